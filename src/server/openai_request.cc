#include "server/openai_request.h"

#include <charconv>

#include <fmt/format.h>

#include "server/api_error.h"

namespace mlaserve::server {
namespace {

constexpr int64_t kMaxTokens = int64_t{1} << 40;  // far above any context; the engine bounds it

void refuse_if_set(const Json& body, const char* name, const char* why) {
  const Json* v = field(body, name);
  if (v != nullptr && !(v->is_array() && v->empty()) && !(v->is_object() && v->empty())) {
    throw invalid_request(fmt::format("'{}' is not supported: {}", name, why), name);
  }
}

// logit_bias: {"<token id>": bias in [-100, 100], ...}, at most limits.max_logit_bias entries. The
// engine checks the ids against the vocabulary and refuses one named twice ("5" and "05").
std::vector<std::pair<int32_t, float>> parse_logit_bias(const Json& body, const RequestLimits& limits) {
  std::vector<std::pair<int32_t, float>> out;
  const Json* v = field(body, "logit_bias");
  if (v == nullptr) return out;
  if (!v->is_object()) throw invalid_request("'logit_bias' must be an object of token ids to biases", "logit_bias");
  if (v->size() > static_cast<size_t>(limits.max_logit_bias)) {
    throw invalid_request(fmt::format("'logit_bias' holds {} tokens; at most {} are allowed", v->size(),
                                      limits.max_logit_bias),
                          "logit_bias");
  }
  for (const auto& [key, bias] : v->items()) {
    int32_t id = 0;
    const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
    if (key.empty() || ec != std::errc() || end != key.data() + key.size() || id < 0) {
      throw invalid_request(fmt::format("'logit_bias' keys must be token ids, got '{}'", key), "logit_bias");
    }
    if (!bias.is_number() || !(bias.get<double>() >= -100.0 && bias.get<double>() <= 100.0)) {
      throw invalid_request(fmt::format("'logit_bias' of token {} must be a number in [-100, 100]", id), "logit_bias");
    }
    out.emplace_back(id, bias.get<float>());
  }
  return out;
}

GenerationFields parse_common(const Json& body, const RequestLimits& limits) {
  GenerationFields g;
  std::optional<std::string> model = get_string(body, "model");
  if (!model) throw invalid_request("'model' is required", "model");
  g.model = *model;
  g.n = static_cast<int32_t>(get_int(body, "n", 1, limits.max_n).value_or(1));
  g.stream = get_bool(body, "stream").value_or(false);
  if (const Json* so = field(body, "stream_options")) {
    if (!so->is_object()) throw invalid_request("'stream_options' must be an object", "stream_options");
    if (!g.stream) throw invalid_request("'stream_options' is only allowed with stream = true", "stream_options");
    g.include_usage = get_bool(*so, "include_usage").value_or(false);
  }
  if (std::optional<int64_t> best_of = get_int(body, "best_of", 1, limits.max_n); best_of && *best_of != g.n) {
    throw invalid_request("'best_of' is not supported (other than equal to n)", "best_of");
  }
  refuse_if_set(body, "tools", "no tool calling");
  refuse_if_set(body, "functions", "no function calling");
  if (const Json* rf = field(body, "response_format")) {
    if (!rf->is_object() || rf->value("type", "") != "text") {
      throw invalid_request("'response_format' is not supported other than {\"type\": \"text\"}", "response_format");
    }
  }

  SamplingParams& p = g.params;
  p.temperature = static_cast<float>(get_number(body, "temperature", 0.0, 2.0).value_or(1.0));
  const double top_p = get_number(body, "top_p", 0.0, 1.0).value_or(1.0);
  if (top_p <= 0.0) throw invalid_request("'top_p' must be in (0, 1], got 0", "top_p");
  p.top_p = static_cast<float>(top_p);
  const int64_t top_k = get_int(body, "top_k", -1, INT32_MAX).value_or(0);
  p.top_k = top_k < 0 ? 0 : top_k;  // -1: off (vLLM)
  p.min_p = static_cast<float>(get_number(body, "min_p", 0.0, 1.0).value_or(0.0));
  p.presence_penalty = static_cast<float>(get_number(body, "presence_penalty", -2.0, 2.0).value_or(0.0));
  p.frequency_penalty = static_cast<float>(get_number(body, "frequency_penalty", -2.0, 2.0).value_or(0.0));
  const double rep = get_number(body, "repetition_penalty", 0.0, 2.0).value_or(1.0);
  if (rep <= 0.0) throw invalid_request("'repetition_penalty' must be in (0, 2], got 0", "repetition_penalty");
  p.repetition_penalty = static_cast<float>(rep);
  p.logit_bias = parse_logit_bias(body, limits);
  if (std::optional<int64_t> seed = get_int(body, "seed", INT64_MIN, INT64_MAX)) p.seed = static_cast<uint64_t>(*seed);
  if (auto stop = get_string_or_strings(body, "stop", static_cast<size_t>(limits.max_stop))) {
    for (const std::string& s : *stop) {
      if (s.empty()) throw invalid_request("'stop' strings must not be empty", "stop");
    }
    p.stop = std::move(*stop);
  }
  if (auto ids = get_int_array(body, "stop_token_ids", 0, INT32_MAX)) {
    for (int64_t id : *ids) p.stop_token_ids.push_back(static_cast<int32_t>(id));
  }
  p.ignore_eos = get_bool(body, "ignore_eos").value_or(false);
  p.skip_special_tokens = get_bool(body, "skip_special_tokens").value_or(true);
  return g;
}

std::vector<int32_t> token_ids(const Json& v) {
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  for (const Json& x : v) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX) {
      throw invalid_request("'prompt' token ids must be non-negative integers", "prompt");
    }
    ids.push_back(x.get<int32_t>());
  }
  if (ids.empty()) throw invalid_request("'prompt' must not be empty", "prompt");
  return ids;
}

std::vector<PromptInput> parse_prompts(const Json& body, const RequestLimits& limits) {
  const Json* v = field(body, "prompt");
  if (v == nullptr) throw invalid_request("'prompt' is required", "prompt");
  const char* expected = "'prompt' must be a string, an array of strings, an array of token ids or an array of those";
  std::vector<PromptInput> prompts;
  if (v->is_string()) {
    prompts.emplace_back(v->get<std::string>());
  } else if (v->is_array() && !v->empty() && (*v)[0].is_number()) {
    prompts.emplace_back(token_ids(*v));
  } else if (v->is_array() && !v->empty()) {
    for (const Json& p : *v) {
      if (p.is_string()) {
        prompts.emplace_back(p.get<std::string>());
      } else if (p.is_array()) {
        prompts.emplace_back(token_ids(p));
      } else {
        throw invalid_request(expected, "prompt");
      }
    }
  } else {
    throw invalid_request(v->is_array() ? "'prompt' must not be empty" : expected, "prompt");
  }
  if (prompts.size() > static_cast<size_t>(limits.max_prompts)) {
    throw invalid_request(fmt::format("'prompt' holds {} prompts; at most {} are allowed", prompts.size(),
                                      limits.max_prompts),
                          "prompt");
  }
  return prompts;
}

// content: a string, null, or [{"type": "text", "text": "..."}, ...] (joined with "\n").
Json message_content(const Json& content) {
  if (content.is_null() || content.is_string()) return content;
  if (!content.is_array()) throw invalid_request("message 'content' must be a string, null or an array of parts", "messages");
  std::string text;
  for (const Json& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string()) {
      throw invalid_request("only text content parts ({\"type\": \"text\", \"text\": ...}) are supported", "messages");
    }
    if (!text.empty()) text += "\n";
    text += part["text"].get<std::string>();
  }
  return text;
}

Json parse_messages(const Json& body) {
  const Json* v = field(body, "messages");
  if (v == nullptr) throw invalid_request("'messages' is required", "messages");
  if (!v->is_array() || v->empty()) throw invalid_request("'messages' must be a non-empty array", "messages");
  Json messages = Json::array();
  for (const Json& m : *v) {
    if (!m.is_object()) throw invalid_request("each message must be an object", "messages");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) throw invalid_request("each message needs a string 'role'", "messages");
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "user" && r != "assistant" && r != "tool" && r != "developer") {
      throw invalid_request(fmt::format("unknown message role '{}'", r), "messages");
    }
    Json out = m;
    if (r == "developer") out["role"] = "system";  // OpenAI's newer name for the system role
    out["content"] = message_content(m.contains("content") ? m["content"] : Json(nullptr));
    messages.push_back(std::move(out));
  }
  return messages;
}

constexpr int64_t kDefaultCompletionTokens = 16;  // /v1/completions without max_tokens

}  // namespace

CompletionRequest parse_completion_request(const Json& body, const RequestLimits& limits) {
  CompletionRequest r;
  r.gen = parse_common(body, limits);
  r.prompts = parse_prompts(body, limits);
  if (get_bool(body, "echo").value_or(false)) throw invalid_request("'echo' is not supported", "echo");
  refuse_if_set(body, "suffix", "no insertion");
  // OpenAI's legacy completions default (and vLLM's): 16 tokens, not the whole context.
  r.gen.params.max_tokens = get_int(body, "max_tokens", 1, kMaxTokens).value_or(kDefaultCompletionTokens);
  if (auto lp = get_int(body, "logprobs", 0, limits.max_logprobs)) r.gen.params.logprobs = static_cast<int32_t>(*lp);
  return r;
}

ChatRequest parse_chat_request(const Json& body, const RequestLimits& limits) {
  ChatRequest r;
  r.gen = parse_common(body, limits);
  r.messages = parse_messages(body);
  r.add_generation_prompt = get_bool(body, "add_generation_prompt").value_or(true);
  std::optional<int64_t> max_tokens = get_int(body, "max_completion_tokens", 1, kMaxTokens);
  if (!max_tokens) max_tokens = get_int(body, "max_tokens", 1, kMaxTokens);
  r.gen.params.max_tokens = max_tokens;
  r.logprobs = get_bool(body, "logprobs").value_or(false);
  if (auto top = get_int(body, "top_logprobs", 0, limits.max_logprobs)) {
    if (!r.logprobs) throw invalid_request("'top_logprobs' needs 'logprobs' = true", "top_logprobs");
    r.top_logprobs = static_cast<int32_t>(*top);
  }
  if (r.logprobs) r.gen.params.logprobs = r.top_logprobs;
  return r;
}

}  // namespace mlaserve::server
