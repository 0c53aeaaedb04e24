// Host side of the Hopper grouped block-FP8 MoE GEMM (moe_grouped_gemm_fp8_sm90.h): checks,
// tensor maps and the launch by tile width (the kernels are instantiated in
// moe_grouped_gemm_fp8_sm90_n{128,256}.cu).
#include <algorithm>
#include <string_view>

#include "core/cuda_check.h"
#include "core/error.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/moe_grouped_gemm_fp8_sm90.cuh"
#include "ops/cuda/tensor_map.h"

namespace mlaserve::ops::sm90::moe_fp8 {
namespace {

constexpr std::string_view kOp = "moe_grouped_gemm_fp8_cuda";

}  // namespace

void moe_grouped_gemm_fp8_sm90(sm89::MoeFp8GemmParams g, bool swiglu, int bn, cudaStream_t stream) {
  const int n_step = swiglu ? bn / 2 : bn;  // output columns per tile
  MLA_CHECK((bn == 128 || bn == 256) && g.k % 128 == 0 && g.b_rows % 128 == 0 && g.n_out % n_step == 0,
            "{}: the sm90 kernel with {}-row weight tiles needs K = {} and the weight rows {} multiples of 128, "
            "n_out {} of {}",
            kOp, bn, g.k, g.b_rows, g.n_out, n_step);
  MLA_CHECK(g.num_experts >= 1 && g.num_experts <= max_experts(), "{}: {} experts (the sm90 kernel holds 1 .. {})",
            kOp, g.num_experts, max_experts());
  MLA_CHECK((int64_t{g.num_rows} / kBM + g.num_experts) * (g.n_out / n_step) < (int64_t{1} << 31),
            "{}: P = {} rows give more tiles than the kernel counts", kOp, g.num_rows);
  if (g.num_rows == 0) return;
  g.n_tiles = g.n_out / n_step;
  Params p{};
  const int a_box_rows = std::min(g.num_rows, kBM);
  p.a_map = tma::fp8_rows_map(kOp, g.a, g.num_rows, g.k, a_box_rows);
  p.b_map = tma::fp8_rows_map(kOp, g.b, static_cast<int64_t>(g.num_experts) * g.b_rows, g.k, 64);
  p.stage_bytes = static_cast<uint32_t>(128 * (a_box_rows + bn));
  p.g = g;
  if (bn == 128) {
    launch<128>(p, swiglu, gpu::device_sm_count(), stream);
  } else {
    launch<256>(p, swiglu, gpu::device_sm_count(), stream);
  }
}

}  // namespace mlaserve::ops::sm90::moe_fp8
