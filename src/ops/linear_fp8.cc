// Device dispatch of linear_fp8.h (see dispatch.h).
#include "ops/linear_fp8.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void linear_fp8(const Tensor& x, const Tensor& w_q, const Tensor& w_scale_inv, const ActQuantParams& act, Tensor& out,
                Stream stream, GridPlacement placement) {
  if (!on_gpu(out)) return linear_fp8_cpu(x, w_q, w_scale_inv, act, out);
#ifdef MLASERVE_WITH_CUDA
  // x bf16 [T, K]
  linear_fp8_cuda(x, w_q, w_scale_inv, act, out, cuda_stream(stream), Fp8GemmKernel::kAuto, placement);
#else
  no_gpu_path("linear_fp8");
#endif
}

void linear_fp8_w8a8(const Tensor& x_q, const Tensor& x_scales, const Tensor& w_q, const Tensor& w_scale_inv,
                     Tensor& out, Stream stream) {
  if (!on_gpu(out)) return linear_fp8_w8a8_cpu(x_q, x_scales, w_q, w_scale_inv, out);
#ifdef MLASERVE_WITH_CUDA
  linear_fp8_w8a8_cuda(x_q, x_scales, w_q, w_scale_inv, out, cuda_stream(stream));
#else
  no_gpu_path("linear_fp8_w8a8");
#endif
}

void linear_fp8_w8a8(const Fp8Activations& x, const Tensor& w_q, const Tensor& w_scale_inv, Tensor& out,
                     Stream stream, GridPlacement placement) {
  if (!on_gpu(out)) return linear_fp8_w8a8_cpu(x.x_q, x.scales, w_q, w_scale_inv, out);
#ifdef MLASERVE_WITH_CUDA
  linear_fp8_w8a8_cuda(x, w_q, w_scale_inv, out, cuda_stream(stream), Fp8GemmKernel::kAuto, placement);
#else
  no_gpu_path("linear_fp8_w8a8");
#endif
}

void silu_mul_linear_fp8(const Tensor& gate_up, const Tensor& w_q, const Tensor& w_scale_inv, const ActQuantParams& act,
                         Tensor& out, Stream stream, GridPlacement placement) {
  if (!on_gpu(out)) return silu_mul_linear_fp8_cpu(gate_up, w_q, w_scale_inv, act, out);
#ifdef MLASERVE_WITH_CUDA
  silu_mul_linear_fp8_cuda(gate_up, w_q, w_scale_inv, act, out, cuda_stream(stream), Fp8GemmKernel::kAuto, placement);
#else
  no_gpu_path("silu_mul_linear_fp8");
#endif
}

}  // namespace mlaserve::ops
