// The JSON the OpenAI API answers with, for both routes, and its SSE framing:
//   /v1/completions        object "text_completion" (also each stream chunk), choices[i].text,
//                          logprobs {tokens, token_logprobs, top_logprobs: [{token: lp}], text_offset}
//   /v1/chat/completions   object "chat.completion", choices[i].message {role, content
//                          [, reasoning_content]}; stream chunks "chat.completion.chunk" with
//                          choices[i].delta; logprobs {content: [{token, logprob, bytes,
//                          top_logprobs: [{token, logprob, bytes}]}]}
//   usage                  {prompt_tokens, completion_tokens, total_tokens,
//                           prompt_tokens_details: {cached_tokens}}
// SSE: every chunk is "data: <json>\n\n"; the stream ends with "data: [DONE]\n\n".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/request.h"
#include "server/request_fields.h"
#include "tokenizer/tokenizer.h"

namespace mlaserve::server {

enum class ApiKind { kCompletion, kChat };

struct ResponseMeta {
  ApiKind kind = ApiKind::kCompletion;
  std::string id;        // "cmpl-..." or "chatcmpl-..."
  int64_t created = 0;   // Unix seconds
  std::string model;
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;
};

// A token's text for logprobs: its decoded text (U+FFFD for a partial UTF-8 character), "" for
// ids the tokenizer lacks or without a tokenizer.
std::string token_text(const tokenizer::Tokenizer* tok, int32_t id);

// logprobs.content entries of a chat choice (one per token).
Json chat_logprobs_content(const tokenizer::Tokenizer* tok, const std::vector<TokenLogprobs>& logprobs);
// A completion choice's logprobs object; text_offset counts characters (code points, as OpenAI's
// and vLLM's: each token's text decoded alone, a partial character as one U+FFFD) from `offset`
// (the characters of the choice's text so far).
Json completion_logprobs(const tokenizer::Tokenizer* tok, const std::vector<TokenLogprobs>& logprobs, int64_t offset);

Json usage_json(const Usage& usage);

// One stream chunk with one choice. `delta` is the chat delta object or, for completions, the
// text; finish_reason "" is null. include_usage adds "usage": null (the final chunk carries it).
struct ChunkChoice {
  int64_t index = 0;
  Json delta;               // chat: {"role"?, "content"?, "reasoning_content"?}; completion: a string
  Json logprobs = nullptr;  // chat: {"content": [...]}; completion: completion_logprobs()
  std::string finish_reason;
};
Json stream_chunk(const ResponseMeta& meta, const ChunkChoice& choice, bool include_usage);
// The last chunk before [DONE] when include_usage: no choices, the whole request's usage.
Json usage_chunk(const ResponseMeta& meta, const Usage& usage);

// A whole (non-streamed) response's choice.
struct FullChoice {
  int64_t index = 0;
  std::string text;
  std::optional<std::string> reasoning;  // chat with a reasoning model: reasoning_content
  Json logprobs = nullptr;
  std::string finish_reason;
  std::optional<int32_t> stop_token_id;  // kept for vLLM's stop_reason
  std::string stop_string;
};
Json full_response(const ResponseMeta& meta, const std::vector<FullChoice>& choices, const Usage& usage);

// "data: <json>\n\n" (invalid UTF-8 replaced, never thrown on) and the end marker.
std::string sse_event(const Json& payload);
std::string sse_done();

// JSON text of any reply body, invalid UTF-8 replaced.
std::string dump_json(const Json& j);

}  // namespace mlaserve::server
