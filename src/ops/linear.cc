// Device dispatch of linear.h (see dispatch.h).
#include "ops/linear.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void linear(const Tensor& x, const Tensor& weight, Tensor& out, Stream stream, const L2Prefetches& prefetch) {
  if (!on_gpu(out)) return linear_cpu(x, weight, out);
#ifdef MLASERVE_WITH_CUDA
  linear_cuda(x, weight, out, cuda_stream(stream), prefetch);
#else
  no_gpu_path("linear");
#endif
}

}  // namespace mlaserve::ops
