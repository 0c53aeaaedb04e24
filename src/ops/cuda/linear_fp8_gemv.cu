// Host side of the block-FP8 GEMV (linear_fp8_gemv.h): parameters and the launch by token count.
// The design note and the kernel are in linear_fp8_gemv.cuh.
#include "ops/cuda/linear_fp8_gemv.cuh"

#include "core/cuda_check.h"
#include "core/error.h"
#include "ops/cuda/linear_fp8_gemv.h"
#include "ops/fp8_block.h"

namespace mlaserve::ops::sm90_fp8 {
namespace {

template <bool kQuantize, typename OutT>
void launch(const gpu::Fp8GemvParams<OutT>& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((int64_t{p.n} + gpu::kFp8GemvRows - 1) / gpu::kFp8GemvRows));
  if (p.t <= 1) {
    gpu::linear_fp8_gemv_kernel<1, kQuantize, OutT><<<grid, gpu::kFp8GemvThreads, 0, stream>>>(p);
  } else if (p.t <= 2) {
    gpu::linear_fp8_gemv_kernel<2, kQuantize, OutT><<<grid, gpu::kFp8GemvThreads, 0, stream>>>(p);
  } else {
    gpu::linear_fp8_gemv_kernel<4, kQuantize, OutT><<<grid, gpu::kFp8GemvThreads, 0, stream>>>(p);
  }
  MLA_CUDA_CHECK_LAUNCH();
}

template <typename OutT>
void launch_out(const Fp8GemvOperands& o, int64_t t, int64_t n, int64_t k, bool quantize, const ActQuantParams& act,
                cudaStream_t stream) {
  gpu::Fp8GemvParams<OutT> p{};
  if (quantize) {
    p.x = static_cast<const __nv_bfloat16*>(o.x);
  } else {
    p.x_q = static_cast<const uint8_t*>(o.x);
    p.x_scales = o.x_scales;
  }
  p.w = static_cast<const uint8_t*>(o.w_q);
  p.w_scales = o.w_scales;
  p.out = static_cast<OutT*>(o.out);
  p.t = static_cast<int32_t>(t);
  p.n = static_cast<int32_t>(n);
  p.k = static_cast<int32_t>(k);
  p.groups = static_cast<int32_t>(fp8_num_blocks(k));
  p.amax_floor = act.amax_floor;
  p.ue8m0 = act.scale_format == Fp8ScaleFormat::kUE8M0;
  if (quantize) {
    launch<true>(p, stream);
  } else {
    launch<false>(p, stream);
  }
}

}  // namespace

bool fp8_gemv_fits(int64_t t, int64_t k) {
  return t >= 1 && t <= gpu::kFp8GemvMaxTokens && k > 0 && k % 16 == 0 && k < (int64_t{1} << 30);
}

void run_fp8_gemv(const Fp8GemvOperands& o, int64_t t, int64_t n, int64_t k, bool quantize,
                  const ActQuantParams& act, cudaStream_t stream) {
  MLA_CHECK(fp8_gemv_fits(t, k) && n < (int64_t{1} << 31),
            "fp8 GEMV: needs 1 <= T = {} <= {} and K = {} a multiple of 16", t, gpu::kFp8GemvMaxTokens, k);
  MLA_CHECK(!quantize || act.amax_floor > 0.0f, "fp8 GEMV: amax_floor must be positive, got {}", act.amax_floor);
  if (n == 0) return;
  if (o.out_f32) {
    launch_out<float>(o, t, n, k, quantize, act, stream);
  } else {
    launch_out<__nv_bfloat16>(o, t, n, k, quantize, act, stream);
  }
}

}  // namespace mlaserve::ops::sm90_fp8
