// Device dispatch of moe_combine_norm.h (see dispatch.h).
#include "ops/moe_combine_norm.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void moe_combine_add_rms_norm(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                              Tensor& out, Stream stream) {
  if (!on_gpu(out)) return moe_combine_add_rms_norm_cpu(in, residual, weight, eps, out);
#ifdef MLASERVE_WITH_CUDA
  moe_combine_add_rms_norm_cuda(in, residual, weight, eps, out, cuda_stream(stream));
#else
  no_gpu_path("moe_combine_add_rms_norm");
#endif
}

void moe_combine_add_rms_norm_fp8(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                                  Tensor& out, const ActQuantParams& act, Fp8Activations& out_q, Stream stream) {
  if (!out_q.defined()) return moe_combine_add_rms_norm(in, residual, weight, eps, out, stream);
  if (!on_gpu(out)) return moe_combine_add_rms_norm_fp8_cpu(in, residual, weight, eps, out, act, out_q);
#ifdef MLASERVE_WITH_CUDA
  moe_combine_add_rms_norm_fp8_cuda(in, residual, weight, eps, out, act, out_q, cuda_stream(stream));
#else
  no_gpu_path("moe_combine_add_rms_norm_fp8");
#endif
}

}  // namespace mlaserve::ops
