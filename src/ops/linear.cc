// Device dispatch of linear.h (see dispatch.h).
#include "ops/linear.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void linear(const Tensor& x, const Tensor& weight, Tensor& out, Stream stream) {
  if (!on_gpu(out)) return linear_cpu(x, weight, out);
#ifdef MLASERVE_WITH_CUDA
  linear_cuda(x, weight, out, cuda_stream(stream));
#else
  no_gpu_path("linear");
#endif
}

}  // namespace mlaserve::ops
