// Single-sequence generation on a DeepSeekModel: prefill the prompt (whole, or in chunks),
// then decode one token per step from the latent cache, greedy or sampled. This is the loop of
// `mlaserve generate` and of the golden tests; the batched engine (scheduler, block pool) serves
// many sequences with the same model calls.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/model.h"
#include "ops/sampling.h"

namespace mlaserve {

struct GenerateOptions {
  int64_t max_tokens = 16;
  ops::SamplingOptions sampling;     // temperature <= 0: greedy
  uint64_t seed = 0;
  int64_t prefill_chunk = 0;         // tokens per prefill step; 0: the whole prompt at once
  std::vector<int32_t> stop_token_ids;
  uint64_t block_shuffle_seed = 0;   // non-zero: cache blocks in a shuffled, non-contiguous order
  std::vector<int32_t> prompt_logit_rows;  // prompt positions whose logits are returned
};

struct GenerateResult {
  std::vector<int32_t> ids;         // generated tokens (a stop token included)
  std::string finish_reason;        // "stop" or "length"
  Tensor prompt_logits;             // [prompt_logit_rows.size(), V] f32
  std::vector<Tensor> step_logits;  // per generated token: the logits it was chosen from [V]
};

GenerateResult generate(DeepSeekModel& model, std::span<const int32_t> prompt, const GenerateOptions& options);

}  // namespace mlaserve
