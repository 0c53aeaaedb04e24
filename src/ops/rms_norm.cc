// Device dispatch of rms_norm.h (see dispatch.h).
#include "ops/rms_norm.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out, Stream stream) {
  if (!on_gpu(out)) return rms_norm_cpu(x, weight, eps, out);
  no_gpu_path("rms_norm");
}

void add_rms_norm(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out, Stream stream) {
  if (!on_gpu(out)) return add_rms_norm_cpu(x, residual, weight, eps, out);
  no_gpu_path("add_rms_norm");
}

}  // namespace mlaserve::ops
