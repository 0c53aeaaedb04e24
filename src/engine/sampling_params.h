// SamplingParams: how one request chooses and stops its tokens (the OpenAI API's knobs plus
// vLLM's usual extensions). Validated once when the request enters the engine.
//
// Per sampled token, in this order (sampler.h):
//   1. logprobs, when asked for, come from the model's raw logits (log-softmax, before any
//      penalty or temperature), as vLLM's default "raw logprobs";
//   2. logit_bias (OpenAI): each listed token's logit += its bias (vLLM applies it first too);
//   3. repetition_penalty (Hugging Face / CTRL): every token present in the prompt or the output
//      has its logit divided by the penalty if positive, multiplied if negative;
//   4. frequency_penalty and presence_penalty (OpenAI): logit -= frequency · (times the token
//      occurs in the output) + presence · (1 if it occurs in the output);
//   5. temperature, top-k, top-p, min-p and the seeded draw of ops::sample_cpu (a temperature
//      below 1e-5 draws greedily, as vLLM's).
// Stopping: max_tokens; an EOS token of the model (unless ignore_eos); any of stop_token_ids;
// any of the stop strings in the detokenized output (the text is cut before the match).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mlaserve {

struct SamplingParams {
  std::optional<int64_t> max_tokens;  // none: up to the engine's max_model_len
  float temperature = 1.0f;           // 0: greedy
  float top_p = 1.0f;                 // (0, 1]
  int64_t top_k = 0;                  // 0: off
  float min_p = 0.0f;                 // [0, 1]
  std::optional<uint64_t> seed;       // none: the engine picks one per request
  std::vector<std::string> stop;      // stop strings (need a detokenizer)
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  float presence_penalty = 0.0f;      // [-2, 2]
  float frequency_penalty = 0.0f;     // [-2, 2]
  float repetition_penalty = 1.0f;    // > 0; 1: off
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, added to its logit in [-100, 100]), ids distinct
  std::optional<int32_t> logprobs;    // none: no logprobs; n >= 0: the sampled token's and the top n
  bool skip_special_tokens = true;    // detokenized text leaves out special tokens
};

// Fails (mlaserve::Error naming the field) on an out-of-range value. max_logprobs bounds
// `logprobs`; vocab_size bounds stop_token_ids and logit_bias's ids.
void validate(const SamplingParams& params, int32_t max_logprobs, int64_t vocab_size);

}  // namespace mlaserve
