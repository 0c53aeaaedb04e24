// Device dispatch of linear_fp8.h (see dispatch.h).
#include "ops/linear_fp8.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void linear_fp8(const Tensor& x, const Tensor& w_q, const Tensor& w_scale_inv, const ActQuantParams& act, Tensor& out, Stream stream) {
  if (!on_gpu(out)) return linear_fp8_cpu(x, w_q, w_scale_inv, act, out);
#ifdef MLASERVE_WITH_CUDA
  // GPU: x bf16 [T, K] -> e4m3 [T, K] + scales [T, ceil(K/128)] (from the stream-ordered caching
  // allocator), then the W8A8 GEMM; out [T, N] bf16 or f32.
  MLA_CHECK(x.ndim() == 2, "linear_fp8: x {} must be [T, K]", shape_str(x.shape()));
  Tensor x_q = Tensor::empty(x.shape(), DType::kF8E4M3, Device::kCUDA);                                // [T, K]
  Tensor x_scales = Tensor::empty({x.dim(0), fp8_num_blocks(x.dim(1))}, DType::kF32, Device::kCUDA);  // [T, K/128]
  quantize_activations_fp8_cuda(x, act, x_q, x_scales, cuda_stream(stream));
  linear_fp8_w8a8_cuda(x_q, x_scales, w_q, w_scale_inv, out, cuda_stream(stream));
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

}  // namespace mlaserve::ops
