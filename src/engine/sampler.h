// The sampler: logits rows in, one token (and its logprobs) per row out, following
// SamplingParams (sampling_params.h has the order of operations).
//   - sample_tokens: rows on the host (ops::sample_cpu after the penalties, the rows side by
//     side on the host's cores);
//   - sample_tokens_gpu: every row of a GPU logits batch that has no penalty, in one ops::sample
//     launch (greedy, temperature, top-k, top-p, min-p); only the token ids come back. Rows with
//     penalties need the request's tokens and stay on the host (sample_tokens), as do the
//     logprobs of rows that ask for them (token_logprobs on a host copy of the row: raw
//     logprobs do not depend on the sampled token's path).
//
// The draw is ops::sample_cpu's counter-based one with key (seed, number of tokens the request
// has generated so far), so a request's tokens do not depend on the batch around it or on
// being preempted and recomputed.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "core/stream.h"
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

// Applies logit_bias, then the penalties, to logits [V] in place (sampling_params.h's order).
void adjust_logits(std::span<float> logits, const SamplerRow& row);

// The top-n log-probabilities of a log-softmax row [V], best first (ties: lower id).
std::vector<TokenLogprob> top_logprobs(std::span<const float> logprobs, int32_t n);

// Samples each row of logits [R, V] f32 on the host (modified in place by adjust_logits) with
// rows[r]. Token -1 (and no logprobs): every token of the row is masked (-inf), or NaN.
std::vector<SampledToken> sample_tokens(Tensor& logits, std::span<const SamplerRow> rows);

// Whether sample_tokens_gpu draws the row's token: no penalties (they need the request's tokens)
// and no logit_bias (the host applies both).
bool samples_on_gpu(const SamplingParams& params);

// Tokens for logits [B, V] f32 on the GPU and rows [B]: ops::sample's token for each row that
// samples_on_gpu (the same as sample_tokens' but at a rounding boundary: ops/cuda/sampling_cuda.h),
// -1 for the others and for rows whose every token is masked (the host then samples them).
// Empty when no row samples on the GPU. Runs on `stream`, after which the logits must be ready
// (written by work queued before it there, or already complete), and waits for that stream only:
// a pipeline samples step N on a stream of its own while stage 0's step N + 1 still runs on the
// model's stream. Off the legacy stream its buffers come from a pool of its own (the shared
// cache hands blocks out in the model stream's order).
std::vector<int32_t> sample_tokens_gpu(const Tensor& logits, std::span<const SamplerRow> rows, Stream stream = {});

// The raw logprobs (log-softmax of logits [1, V] f32 on the host, before penalties and
// temperature) of `token` and of the top n tokens.
TokenLogprobs token_logprobs(const Tensor& logits, int32_t token, int32_t n);

}  // namespace mlaserve
