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

// A row-major [rows, k] bf16 matrix read in boxes of 64 channels (128 bytes) x box_rows with the
// 128-byte swizzle; rows past the end read as zeros.
CUtensorMap bf16_rows_map(const void* data, int64_t rows, int64_t k, int box_rows) {
  return tma::rows_map(kOp, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, data, rows, k, 64, static_cast<uint32_t>(box_rows));
}

// One grouped GEMM: grid = (upper bound of the M tiles) x (N tiles), see the .cuh note.
template <class Tile, bool kSwiGlu>
void launch(const sm80::MoeGemmParams& g, cudaStream_t stream) {
  using L = Layout<Tile>;
  Params p{};
  p.a_map = bf16_rows_map(g.a, g.num_rows, g.k, L::kBM);
  p.b_map = bf16_rows_map(g.b, static_cast<int64_t>(g.num_experts) * g.b_rows, g.k, L::kBBoxRows);
  p.g = g;
  const auto smem = static_cast<int>(Tile::smem_bytes(g.num_experts));
  const auto kernel = moe_grouped_gemm_sm90_kernel<Tile, kSwiGlu>;
  MLA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const int64_t max_m_tiles = g.num_rows / L::kBM + std::min(g.num_experts, g.num_rows);
  const int64_t grid = max_m_tiles * g.n_tiles;
  MLA_CHECK(grid < (int64_t{1} << 31), "{}: {} CTAs exceed the grid", kOp, grid);
  kernel<<<static_cast<unsigned>(grid), L::kThreads, smem, stream>>>(p);
  MLA_CUDA_CHECK_LAUNCH();
}

template <class Tile>
void run(sm80::MoeGemmParams p, bool swiglu, cudaStream_t stream) {
  const int n_step = swiglu ? Tile::kBN / 2 : Tile::kBN;  // output columns per tile
  MLA_CHECK(p.n_out % n_step == 0 && p.k % Layout<Tile>::kBK == 0,
            "{}: the sm90 kernel's {} x {} tile needs n_out = {} a multiple of {} ({}) and K = {} of {}", kOp,
            Tile::kBM, Tile::kBN, p.n_out, n_step, swiglu ? "SwiGLU: Im" : "plain: N", p.k, Layout<Tile>::kBK);
  p.n_tiles = p.n_out / n_step;
  if (swiglu) {
    launch<Tile, true>(p, stream);
  } else {
    launch<Tile, false>(p, stream);
  }
}

}  // namespace

void moe_grouped_gemm_sm90(sm80::MoeGemmParams p, bool swiglu, Bf16Tile tile, cudaStream_t stream) {
  switch (tile) {
    case Bf16Tile::k128x256: return run<Tile128x256>(p, swiglu, stream);
    case Bf16Tile::k192x128: return run<Tile192x128>(p, swiglu, stream);
  }
  MLA_CHECK(false, "{}: no sm90 tile {}", kOp, static_cast<int>(tile));
}

}  // namespace mlaserve::ops::sm90::moe
