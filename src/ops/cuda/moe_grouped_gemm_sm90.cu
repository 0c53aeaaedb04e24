// Host side of the Hopper grouped MoE GEMM (moe_grouped_gemm_sm90.h): tensor maps and launches.
#include <algorithm>
#include <string_view>

#include "core/cuda_check.h"
#include "core/error.h"
#include "ops/cuda/moe_grouped_gemm_sm90.cuh"
#include "ops/cuda/tensor_map.h"

namespace mlaserve::ops::sm90::moe {
namespace {

constexpr std::string_view kOp = "moe_experts_cuda";

// A row-major [rows, k] bf16 matrix read in boxes of 64 channels (128 bytes) x 128 rows with the
// 128-byte swizzle; rows past the end read as zeros.
CUtensorMap bf16_rows_map(const void* data, int64_t rows, int64_t k) {
  return tma::rows_map(kOp, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, data, rows, k, Layout::kBK, 128);
}

// One grouped GEMM: grid = (upper bound of the M tiles) x (N tiles), see the .cuh note.
template <bool kSwiGlu>
void launch(const sm80::MoeGemmParams& g, cudaStream_t stream) {
  Params p{};
  p.a_map = bf16_rows_map(g.a, g.num_rows, g.k);
  p.b_map = bf16_rows_map(g.b, static_cast<int64_t>(g.num_experts) * g.b_rows, g.k);
  p.g = g;
  const auto smem = static_cast<int>(smem_bytes(g.num_experts));
  const auto kernel = moe_grouped_gemm_sm90_kernel<kSwiGlu>;
  MLA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const int64_t max_m_tiles = g.num_rows / kBM + std::min(g.num_experts, g.num_rows);
  const int64_t grid = max_m_tiles * g.n_tiles;
  MLA_CHECK(grid < (int64_t{1} << 31), "{}: {} CTAs exceed the grid", kOp, grid);
  kernel<<<static_cast<unsigned>(grid), Layout::kThreads, smem, stream>>>(p);
  MLA_CUDA_CHECK_LAUNCH();
}

}  // namespace

void moe_grouped_gemm_sm90(sm80::MoeGemmParams p, bool swiglu, cudaStream_t stream) {
  const int n_step = swiglu ? kBN / 2 : kBN;  // output columns per tile
  MLA_CHECK(p.n_out % n_step == 0 && p.k % Layout::kBK == 0,
            "{}: the sm90 kernel needs n_out = {} a multiple of {} ({}) and K = {} of {}", kOp, p.n_out, n_step,
            swiglu ? "SwiGLU: Im" : "plain: N", p.k, Layout::kBK);
  p.n_tiles = p.n_out / n_step;
  if (swiglu) {
    launch<true>(p, stream);
  } else {
    launch<false>(p, stream);
  }
}

}  // namespace mlaserve::ops::sm90::moe
