// Device dispatch of silu_mul.h (see dispatch.h).
#include "ops/silu_mul.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void silu_mul(const Tensor& gate_up, Tensor& out, Stream stream) {
  if (!on_gpu(out)) return silu_mul_cpu(gate_up, out);
#ifdef MLASERVE_WITH_CUDA
  silu_mul_cuda(gate_up, out, cuda_stream(stream));
#else
  no_gpu_path("silu_mul");
#endif
}

void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out, Stream stream) {
  if (!on_gpu(out)) return silu_mul_cpu(gate, up, out);
#ifdef MLASERVE_WITH_CUDA
  silu_mul_cuda(gate, up, out, cuda_stream(stream));
#else
  no_gpu_path("silu_mul");
#endif
}

}  // namespace mlaserve::ops
