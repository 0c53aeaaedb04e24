// The OpenAI API's generation requests, parsed and validated into typed structs before
// anything else happens (a bad request gets a 400 naming the field and touches nothing).
//
// Accepted fields (others are ignored, as vLLM does):
//   both:  model (required), n, stream, stream_options.include_usage, stop, seed, temperature
//          [0, 2], top_p (0, 1], top_k (>= 0 or -1 = off), min_p [0, 1], presence_penalty and
//          frequency_penalty [-2, 2], repetition_penalty (0, 2], logit_bias ({"<token id>": bias in
//          [-100, 100]}, at most max_logit_bias tokens), ignore_eos, stop_token_ids,
//          skip_special_tokens; refused when set: tools, functions, response_format other than
//          text, suffix, echo = true, best_of != n
//   /v1/completions: prompt (a string, an array of strings, an array of token ids or an array
//          of such arrays: one prompt each, n choices each), max_tokens (default 16, as OpenAI),
//          logprobs (an integer)
//   /v1/chat/completions: messages (role + content: a string, null, or an array of text
//          parts), max_completion_tokens or max_tokens (the first wins), logprobs (a boolean),
//          top_logprobs (needs logprobs), add_generation_prompt (default true)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/sampling_params.h"
#include "server/request_fields.h"

namespace mlaserve::server {

struct RequestLimits {
  int32_t max_logprobs = 20;  // EngineOptions::max_logprobs
  int32_t max_n = 64;         // choices per prompt
  int32_t max_prompts = 64;   // prompts of one /v1/completions request
  int32_t max_stop = 16;      // stop strings
  int32_t max_logit_bias = 1024;  // tokens of logit_bias (each one's work on every sampled token)
};

// Fields both routes share.
struct GenerationFields {
  std::string model;
  SamplingParams params;  // logprobs set from the route's own fields
  int32_t n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

using PromptInput = std::variant<std::string, std::vector<int32_t>>;  // text or token ids

struct CompletionRequest {
  GenerationFields gen;
  std::vector<PromptInput> prompts;  // at least one
};

struct ChatRequest {
  GenerationFields gen;
  Json messages;  // an array of {"role": string, "content": string|null, ...}; content parts joined
  bool add_generation_prompt = true;
  bool logprobs = false;
  int32_t top_logprobs = 0;
};

CompletionRequest parse_completion_request(const Json& body, const RequestLimits& limits);
ChatRequest parse_chat_request(const Json& body, const RequestLimits& limits);

}  // namespace mlaserve::server
