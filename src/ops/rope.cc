// Device dispatch of rope.h (see dispatch.h).
#include "ops/rope.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void apply_rope_interleaved(Tensor& x, const Tensor& positions, const Tensor& cos_sin, int64_t channel_offset, Stream stream) {
  if (!on_gpu(x)) return apply_rope_interleaved_cpu(x, positions, cos_sin, channel_offset);
#ifdef MLASERVE_WITH_CUDA
  apply_rope_interleaved_cuda(x, positions, cos_sin, channel_offset, cuda_stream(stream));
#else
  no_gpu_path("apply_rope_interleaved");
#endif
}

}  // namespace mlaserve::ops
