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

void sample(const Tensor& logits, std::span<const SamplingOptions> options, std::span<const SamplingKey> keys,
            Tensor& token_ids, Stream stream) {
  if (!on_gpu(token_ids)) return sample_cpu(logits, options, keys, token_ids);
#ifdef MLASERVE_WITH_CUDA
  MLA_CHECK(logits.ndim() == 2 && static_cast<int64_t>(options.size()) == logits.dim(0) &&
                static_cast<int64_t>(keys.size()) == logits.dim(0),
            "sample: {} options and {} keys for logits {}", options.size(), keys.size(), shape_str(logits.shape()));
  sample_cuda(logits, options.data(), keys.data(), token_ids, cuda_stream(stream));
#else
  no_gpu_path("sample");
#endif
}

}  // namespace mlaserve::ops
