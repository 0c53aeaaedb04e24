// Device dispatch of rms_norm.h (see dispatch.h).
#include "ops/rms_norm.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out, Stream stream) {
  if (!on_gpu(out)) return rms_norm_cpu(x, weight, eps, out);
#ifdef MLASERVE_WITH_CUDA
  rms_norm_cuda(x, weight, eps, out, cuda_stream(stream));
#else
  no_gpu_path("rms_norm");
#endif
}

void add_rms_norm(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out, Stream stream) {
  if (!on_gpu(out)) return add_rms_norm_cpu(x, residual, weight, eps, out);
#ifdef MLASERVE_WITH_CUDA
  add_rms_norm_cuda(x, residual, weight, eps, out, cuda_stream(stream));
#else
  no_gpu_path("add_rms_norm");
#endif
}

void add_sum_rms_norm(const Tensor& base, const Tensor& rest, Tensor& residual, const Tensor& weight, float eps,
                      Tensor& out, Stream stream) {
  if (!on_gpu(out)) return add_sum_rms_norm_cpu(base, rest, residual, weight, eps, out);
#ifdef MLASERVE_WITH_CUDA
  add_sum_rms_norm_cuda(base, rest, residual, weight, eps, out, cuda_stream(stream));
#else
  no_gpu_path("add_sum_rms_norm");
#endif
}

}  // namespace mlaserve::ops
