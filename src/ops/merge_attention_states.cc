// Device dispatch of merge_attention_states.h (see dispatch.h).
#include "ops/merge_attention_states.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void merge_attention_states(const AttentionState& a, const AttentionState& b, AttentionState& merged, Stream stream) {
  if (!on_gpu(merged.out)) return merge_attention_states_cpu(a, b, merged);
#ifdef MLASERVE_WITH_CUDA
  merge_attention_states_cuda(a, b, merged, cuda_stream(stream));
#else
  no_gpu_path("merge_attention_states");
#endif
}

}  // namespace mlaserve::ops
