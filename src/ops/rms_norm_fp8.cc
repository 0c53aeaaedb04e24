// Device dispatch of rms_norm_fp8.h (see dispatch.h).
#include "ops/rms_norm_fp8.h"

#include "ops/dispatch.h"
#include "ops/rms_norm.h"

#ifdef MLASERVE_WITH_CUDA
#include "ops/cuda/linear_fp8_heuristics.h"
#endif

namespace mlaserve::ops {

bool fp8_norm_quantization_pays(Device device, int64_t tokens, int64_t k) {
#ifdef MLASERVE_WITH_CUDA
  // Wherever the linears take the same kernel on bf16 x as on the norm's codes: all but one token
  // on narrow rows, where bf16 x takes the CUDA-core GEMV quantising inside.
  if (device == Device::kCUDA) {
    return sm90_fp8::use_gemv_mma(tokens, k, false) == sm90_fp8::use_gemv_mma(tokens, k, true);
  }
#endif
  return device == Device::kCPU;
}

void rms_norm_fp8(const Tensor& x, const Tensor& weight, float eps, Tensor& out, const ActQuantParams& act,
                  Fp8Activations& out_q, Stream stream) {
  if (!out_q.defined()) return rms_norm(x, weight, eps, out, stream);
  if (!on_gpu(out)) return rms_norm_fp8_cpu(x, weight, eps, out, act, out_q);
#ifdef MLASERVE_WITH_CUDA
  rms_norm_fp8_cuda(x, weight, eps, out, act, out_q, cuda_stream(stream));
#else
  no_gpu_path("rms_norm_fp8");
#endif
}

void add_rms_norm_fp8(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out,
                      const ActQuantParams& act, Fp8Activations& out_q, Stream stream) {
  if (!out_q.defined()) return add_rms_norm(x, residual, weight, eps, out, stream);
  if (!on_gpu(out)) return add_rms_norm_fp8_cpu(x, residual, weight, eps, out, act, out_q);
#ifdef MLASERVE_WITH_CUDA
  add_rms_norm_fp8_cuda(x, residual, weight, eps, out, act, out_q, cuda_stream(stream));
#else
  no_gpu_path("add_rms_norm_fp8");
#endif
}

void add_sum_rms_norm_fp8(const Tensor& base, const Tensor& rest, Tensor& residual, const Tensor& weight, float eps,
                          Tensor& out, const ActQuantParams& act, Fp8Activations& out_q, Stream stream) {
  if (!out_q.defined()) return add_sum_rms_norm(base, rest, residual, weight, eps, out, stream);
  if (!on_gpu(out)) return add_sum_rms_norm_fp8_cpu(base, rest, residual, weight, eps, out, act, out_q);
#ifdef MLASERVE_WITH_CUDA
  add_sum_rms_norm_fp8_cuda(base, rest, residual, weight, eps, out, act, out_q, cuda_stream(stream));
#else
  no_gpu_path("add_sum_rms_norm_fp8");
#endif
}

}  // namespace mlaserve::ops
