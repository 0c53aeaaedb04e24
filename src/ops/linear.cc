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

void silu_mul_linear(const Tensor& gate_up, const Tensor& weight, Tensor& out, Stream stream) {
  if (!on_gpu(out)) return silu_mul_linear_cpu(gate_up, weight, out);
#ifdef MLASERVE_WITH_CUDA
  silu_mul_linear_cuda(gate_up, weight, out, cuda_stream(stream));
#else
  no_gpu_path("silu_mul_linear");
#endif
}

}  // namespace mlaserve::ops
