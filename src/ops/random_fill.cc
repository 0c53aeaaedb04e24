// Device dispatch of random_fill.h (see dispatch.h).
#include "ops/random_fill.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void fill_uniform(const UniformFill& fill, Tensor& out, Stream stream) {
  if (!on_gpu(out)) return fill_uniform_cpu(fill, out);
#ifdef MLASERVE_WITH_CUDA
  fill_uniform_cuda(fill, out, cuda_stream(stream));
#else
  no_gpu_path("fill_uniform");
#endif
}

}  // namespace mlaserve::ops
