// The CPU sampler: one sampled logits row in, one token (and its logprobs) out, following
// SamplingParams (sampling_params.h has the order of operations). The GPU sampler will take
// the same inputs for a whole batch.
//
// The draw is ops::sample_cpu's counter-based one with key (seed, number of tokens the request
// has generated so far), so a request's tokens do not depend on the batch around it or on
// being preempted and recomputed.
#pragma once

#include <cstdint>
#include <span>

#include "core/tensor.h"
#include "engine/request.h"
#include "engine/sampling_params.h"

namespace mlaserve {

struct SamplerRow {
  const SamplingParams* params = nullptr;
  std::span<const int32_t> prompt;  // the request's prompt
  std::span<const int32_t> output;  // its tokens generated so far
  uint64_t seed = 0;
};

struct SampledToken {
  int32_t token = 0;
  std::optional<TokenLogprobs> logprobs;  // when params->logprobs is set
};

// Applies the penalties to logits [V] in place.
void apply_penalties(std::span<float> logits, const SamplerRow& row);

// The top-n log-probabilities of a log-softmax row [V], best first (ties: lower id).
std::vector<TokenLogprob> top_logprobs(std::span<const float> logprobs, int32_t n);

// Whether the token is the logits' argmax and nothing else is asked of the row (no penalties,
// no logprobs): then a GPU argmax gives exactly sample_token's token.
bool is_plain_greedy(const SamplingParams& params);

// Samples from logits [1, V] f32 on the host (modified in place by the penalties).
SampledToken sample_token(Tensor& logits, const SamplerRow& row);

}  // namespace mlaserve
