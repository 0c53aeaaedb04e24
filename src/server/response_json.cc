#include "server/response_json.h"

#include "tokenizer/utf8.h"

namespace mlaserve::server {
namespace {

const char* object_name(ApiKind kind, bool chunk) {
  if (kind == ApiKind::kCompletion) return "text_completion";
  return chunk ? "chat.completion.chunk" : "chat.completion";
}

Json head(const ResponseMeta& meta, bool chunk) {
  return Json{{"id", meta.id}, {"object", object_name(meta.kind, chunk)}, {"created", meta.created},
              {"model", meta.model}};
}

Json token_bytes(const tokenizer::Tokenizer* tok, int32_t id) {
  Json bytes = Json::array();
  if (tok != nullptr && tok->has_id(id)) {
    for (unsigned char c : tok->token_bytes(id)) bytes.push_back(static_cast<int>(c));
  }
  return bytes;
}

Json or_null(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }

}  // namespace

std::string token_text(const tokenizer::Tokenizer* tok, int32_t id) {
  if (tok == nullptr || !tok->has_id(id)) return "";
  const int32_t ids[1] = {id};
  return tok->decode(ids, /*skip_special_tokens=*/false);
}

Json chat_logprobs_content(const tokenizer::Tokenizer* tok, const std::vector<TokenLogprobs>& logprobs) {
  Json content = Json::array();
  for (const TokenLogprobs& lp : logprobs) {
    Json top = Json::array();
    for (const TokenLogprob& t : lp.top) {
      top.push_back({{"token", token_text(tok, t.token)}, {"logprob", t.logprob}, {"bytes", token_bytes(tok, t.token)}});
    }
    content.push_back({{"token", token_text(tok, lp.sampled.token)},
                       {"logprob", lp.sampled.logprob},
                       {"bytes", token_bytes(tok, lp.sampled.token)},
                       {"top_logprobs", std::move(top)}});
  }
  return content;
}

Json completion_logprobs(const tokenizer::Tokenizer* tok, const std::vector<TokenLogprobs>& logprobs, int64_t offset) {
  Json tokens = Json::array(), token_logprobs = Json::array(), top_logprobs = Json::array(), offsets = Json::array();
  for (const TokenLogprobs& lp : logprobs) {
    const std::string text = token_text(tok, lp.sampled.token);
    tokens.push_back(text);
    token_logprobs.push_back(lp.sampled.logprob);
    Json top = Json::object();
    for (const TokenLogprob& t : lp.top) top[token_text(tok, t.token)] = t.logprob;  // equal texts: the best one
    top_logprobs.push_back(std::move(top));
    offsets.push_back(offset);
    offset += static_cast<int64_t>(tokenizer::utf8::count_code_points(text));  // characters, as OpenAI's
  }
  return Json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(token_logprobs)},
              {"top_logprobs", std::move(top_logprobs)},
              {"text_offset", std::move(offsets)}};
}

Json usage_json(const Usage& u) {
  return Json{{"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens},
              {"total_tokens", u.prompt_tokens + u.completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

Json stream_chunk(const ResponseMeta& meta, const ChunkChoice& c, bool include_usage) {
  Json choice = {{"index", c.index}};
  choice[meta.kind == ApiKind::kChat ? "delta" : "text"] = c.delta;
  choice["logprobs"] = c.logprobs;
  choice["finish_reason"] = or_null(c.finish_reason);
  Json j = head(meta, true);
  j["choices"] = Json::array({std::move(choice)});
  if (include_usage) j["usage"] = nullptr;
  return j;
}

Json usage_chunk(const ResponseMeta& meta, const Usage& usage) {
  Json j = head(meta, true);
  j["choices"] = Json::array();
  j["usage"] = usage_json(usage);
  return j;
}

Json full_response(const ResponseMeta& meta, const std::vector<FullChoice>& choices, const Usage& usage) {
  Json out = Json::array();
  for (const FullChoice& c : choices) {
    Json choice = {{"index", c.index}};
    if (meta.kind == ApiKind::kChat) {
      Json message = {{"role", "assistant"}, {"content", c.text}};
      if (c.reasoning) message["reasoning_content"] = or_null(*c.reasoning);
      choice["message"] = std::move(message);
    } else {
      choice["text"] = c.text;
    }
    choice["logprobs"] = c.logprobs;
    choice["finish_reason"] = or_null(c.finish_reason);
    if (c.stop_token_id) {
      choice["stop_reason"] = *c.stop_token_id;
    } else {
      choice["stop_reason"] = or_null(c.stop_string);
    }
    out.push_back(std::move(choice));
  }
  Json j = head(meta, false);
  j["choices"] = std::move(out);
  j["usage"] = usage_json(usage);
  return j;
}

std::string dump_json(const Json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string sse_event(const Json& payload) { return "data: " + dump_json(payload) + "\n\n"; }

std::string sse_done() { return "data: [DONE]\n\n"; }

}  // namespace mlaserve::server
