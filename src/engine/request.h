// What goes into the engine (GenerationRequest) and what comes out of it (RequestOutput
// events, one per step in which the request produced something, the last with finished set).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/sampling_params.h"
#include "engine/sequence.h"

namespace mlaserve {

enum class FinishReason : uint8_t {
  kNone,    // not finished
  kStop,    // EOS, a stop token id or a stop string
  kLength,  // max_tokens, or the engine's max_model_len
  kAbort,   // Engine::abort, or the engine shut down
  kError,   // the step failed for this request (RequestOutput::error says why)
};

// "stop", "length", "abort", "error" ("" for kNone): the OpenAI API's finish_reason values.
const char* finish_reason_name(FinishReason reason);

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids
  SamplingParams params;
  // Optional: called on the engine's thread after each event is queued on the request's
  // stream (to wake an event loop). It must return quickly; it may call Engine::abort.
  std::function<void()> on_output;
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;  // natural log
};

struct TokenLogprobs {
  TokenLogprob sampled;           // the token that was chosen
  std::vector<TokenLogprob> top;  // the params.logprobs most likely, best first (ties: lower id)
};

struct RequestOutput {
  RequestId id = 0;
  std::vector<int32_t> token_ids;       // tokens new since the previous event (0 or 1)
  std::vector<TokenLogprobs> logprobs;  // one per token_ids entry when params.logprobs is set
  std::string text;                     // text new since the previous event (with a detokenizer)
  bool finished = false;                // the last event of this request
  FinishReason finish_reason = FinishReason::kNone;
  std::optional<int32_t> stop_token_id;  // kStop by an EOS or stop token id: which one
  std::string stop_string;              // kStop by a stop string: which one
  std::string error;                    // kError: what went wrong
  // Usage so far.
  int64_t num_prompt_tokens = 0;
  int64_t num_output_tokens = 0;
  int64_t num_cached_tokens = 0;  // prompt tokens served from the prefix cache
};

}  // namespace mlaserve
