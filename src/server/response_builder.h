// ResponseBuilder: one API request's answer, assembled from its engine requests' events (one
// engine request per choice: n per prompt). Pure: no engine, no sockets, so the formatting is
// unit-tested event by event.
//
// Streaming: add() returns the SSE text to send now. A choice's first output is preceded (chat)
// by a {"role": "assistant", "content": ""} delta; each event with text or tokens becomes one
// chunk; the final event's chunk carries finish_reason. When the last choice has finished, the
// usage chunk (stream_options.include_usage) and "data: [DONE]" follow. A choice that fails in
// the engine sends an {"error": {...}} event in its place.
// Not streaming: after finished(), body() is the whole response, or error() says why not.
//
// Text with a reasoning model: each choice's text goes through a ReasoningSplitter
// (reasoning_content and content); without, all of it is content.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/request.h"
#include "server/api_error.h"
#include "server/reasoning_splitter.h"
#include "server/response_json.h"

namespace mlaserve::server {

struct ResponseOptions {
  ResponseMeta meta;
  bool stream = false;
  bool include_usage = false;
  bool logprobs = false;
  bool reasoning = false;                    // chat: split <think> ... </think> off the content
  const tokenizer::Tokenizer* tokenizer = nullptr;  // token texts of logprobs
};

struct ChoiceSpec {
  int64_t index = 0;
  bool counts_prompt = true;        // the first choice of its prompt: its prompt tokens count in usage
  bool prompt_opened_think = false; // the rendered prompt ends inside <think>
};

class ResponseBuilder {
 public:
  ResponseBuilder(ResponseOptions options, const std::vector<ChoiceSpec>& choices);

  // Adds choice `choice`'s next event (choice indexes the ChoiceSpec list). Streaming: the SSE
  // text to send now (possibly empty); otherwise "".
  std::string add(size_t choice, const RequestOutput& event);

  bool finished() const { return num_finished_ == choices_.size(); }
  size_t num_choices() const { return choices_.size(); }
  bool choice_finished(size_t choice) const { return choices_[choice].finished; }

  // Not streaming, after finished(): why there is no answer (a choice failed or was aborted).
  std::optional<ApiError> error() const;
  // Not streaming, after finished() with no error(): the response body.
  Json body() const;
  Usage usage() const;

 private:
  struct Choice {
    ChoiceSpec spec;
    std::optional<ReasoningSplitter> splitter;
    bool started = false;  // stream: the role delta went out
    bool finished = false;
    std::string text, reasoning;
    int64_t text_chars_sent = 0;  // completions: text_offset of the next token (in characters)
    std::vector<TokenLogprobs> logprobs;
    RequestOutput last;  // the final event (usage, finish reason, stop reason, error)
  };
  std::string stream_event(Choice& c, const RequestOutput& event, const SplitText& split);

  ResponseOptions options_;
  std::vector<Choice> choices_;
  size_t num_finished_ = 0;
};

}  // namespace mlaserve::server
