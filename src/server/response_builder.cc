#include "server/response_builder.h"

#include "tokenizer/utf8.h"

namespace mlaserve::server {

ResponseBuilder::ResponseBuilder(ResponseOptions options, const std::vector<ChoiceSpec>& choices)
    : options_(std::move(options)) {
  for (const ChoiceSpec& spec : choices) {
    Choice c;
    c.spec = spec;
    if (options_.reasoning) c.splitter.emplace(spec.prompt_opened_think);
    choices_.push_back(std::move(c));
  }
}

std::string ResponseBuilder::add(size_t index, const RequestOutput& ev) {
  Choice& c = choices_.at(index);
  if (c.finished) return "";
  SplitText split;
  if (c.splitter) {
    split = c.splitter->push(ev.text);
    if (ev.finished) {
      SplitText rest = c.splitter->finish();
      split.reasoning += rest.reasoning;
      split.content += rest.content;
    }
  } else {
    split.content = ev.text;
  }
  c.text += split.content;
  c.reasoning += split.reasoning;
  c.logprobs.insert(c.logprobs.end(), ev.logprobs.begin(), ev.logprobs.end());
  if (ev.finished) {
    c.finished = true;
    c.last = ev;
    ++num_finished_;
  }
  if (!options_.stream) return "";

  std::string out = stream_event(c, ev, split);
  if (finished()) {
    if (options_.include_usage) out += sse_event(usage_chunk(options_.meta, usage()));
    out += sse_done();
  }
  return out;
}

std::string ResponseBuilder::stream_event(Choice& c, const RequestOutput& ev, const SplitText& split) {
  const ResponseMeta& meta = options_.meta;
  const bool chat = meta.kind == ApiKind::kChat;
  if (ev.finish_reason == FinishReason::kError) {
    return sse_event(ApiError(500, "generation failed: " + ev.error, "internal_error").body());
  }
  const bool has_logprobs = options_.logprobs && !ev.logprobs.empty();
  if (split.content.empty() && split.reasoning.empty() && !has_logprobs && !ev.finished) return "";

  std::string out;
  ChunkChoice chunk;
  chunk.index = c.spec.index;
  if (chat && !c.started) {
    chunk.delta = {{"role", "assistant"}, {"content", ""}};
    out += sse_event(stream_chunk(meta, chunk, options_.include_usage));
  }
  c.started = true;
  if (chat) {
    chunk.delta = Json::object();
    if (!split.reasoning.empty()) chunk.delta["reasoning_content"] = split.reasoning;
    if (!split.content.empty()) chunk.delta["content"] = split.content;
    if (has_logprobs) chunk.logprobs = {{"content", chat_logprobs_content(options_.tokenizer, ev.logprobs)}};
  } else {
    chunk.delta = split.content;
    if (has_logprobs) chunk.logprobs = completion_logprobs(options_.tokenizer, ev.logprobs, c.text_chars_sent);
    c.text_chars_sent += static_cast<int64_t>(tokenizer::utf8::count_code_points(split.content));
  }
  if (ev.finished) chunk.finish_reason = finish_reason_name(ev.finish_reason);
  out += sse_event(stream_chunk(meta, chunk, options_.include_usage));
  return out;
}

std::optional<ApiError> ResponseBuilder::error() const {
  for (const Choice& c : choices_) {
    if (c.last.finish_reason == FinishReason::kError) {
      return ApiError(500, "generation failed: " + c.last.error, "internal_error");
    }
    if (c.last.finish_reason == FinishReason::kAbort) {
      return ApiError(503, "the request was aborted (the server is shutting down)", "service_unavailable");
    }
  }
  return std::nullopt;
}

Usage ResponseBuilder::usage() const {
  Usage u;
  for (const Choice& c : choices_) {
    if (c.spec.counts_prompt) {
      u.prompt_tokens += c.last.num_prompt_tokens;
      u.cached_tokens += c.last.num_cached_tokens;
    }
    u.completion_tokens += c.last.num_output_tokens;
  }
  return u;
}

Json ResponseBuilder::body() const {
  std::vector<FullChoice> out;
  for (const Choice& c : choices_) {
    FullChoice f;
    f.index = c.spec.index;
    f.text = c.text;
    if (c.splitter) f.reasoning = c.reasoning;
    if (options_.logprobs) {
      f.logprobs = options_.meta.kind == ApiKind::kChat
                       ? Json{{"content", chat_logprobs_content(options_.tokenizer, c.logprobs)}}
                       : completion_logprobs(options_.tokenizer, c.logprobs, 0);
    }
    f.finish_reason = finish_reason_name(c.last.finish_reason);
    f.stop_token_id = c.last.stop_token_id;
    f.stop_string = c.last.stop_string;
    out.push_back(std::move(f));
  }
  return full_response(options_.meta, out, usage());
}

}  // namespace mlaserve::server
