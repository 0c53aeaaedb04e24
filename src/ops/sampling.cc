// Device dispatch of sampling.h (see dispatch.h).
#include "ops/sampling.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void greedy_sample(const Tensor& logits, Tensor& token_ids, Stream stream) {
  if (!on_gpu(token_ids)) return greedy_sample_cpu(logits, token_ids);
#ifdef MLASERVE_WITH_CUDA
  greedy_sample_cuda(logits, token_ids, cuda_stream(stream));
#else
  no_gpu_path("greedy_sample");
#endif
}

}  // namespace mlaserve::ops
