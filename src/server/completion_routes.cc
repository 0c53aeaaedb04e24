#include "server/completion_routes.h"

#include <ctime>
#include <random>

#include <fmt/format.h>

#include "core/error.h"
#include "kv/latent_cache.h"
#include "server/api_error.h"
#include "server/openai_request.h"

namespace mlaserve::server {
namespace {

std::string random_id(const char* prefix) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return fmt::format("{}{:016x}{:016x}", prefix, rng(), rng());
}

ResponseOptions response_options(const ServingState& state, ApiKind kind, const GenerationFields& gen) {
  ResponseOptions o;
  o.meta = {kind, random_id(kind == ApiKind::kChat ? "chatcmpl-" : "cmpl-"), static_cast<int64_t>(std::time(nullptr)),
            gen.model};
  o.stream = gen.stream;
  o.include_usage = gen.include_usage;
  o.logprobs = gen.params.logprobs.has_value();
  o.tokenizer = state.tokenizer();
  return o;
}

// 400 context_length_exceeded when the prompt (and max_tokens) do not fit the context.
void check_length(ServingState& state, const std::vector<int32_t>& prompt, const SamplingParams& params,
                  const char* max_tokens_param) {
  const int64_t limit = state.engine().max_model_len();
  const int64_t cache_tokens = int64_t{state.engine().stats().num_cache_blocks} * kCacheBlockSize;
  const std::string why = limit == cache_tokens ? " (set by the KV cache's capacity)" : "";
  const auto n = static_cast<int64_t>(prompt.size());
  if (n >= limit) {
    throw invalid_request(fmt::format("This model's maximum context length is {} tokens{}. However, your prompt has "
                                      "{} tokens; it must be shorter to leave room for the completion.",
                                      limit, why, n),
                          "messages", "context_length_exceeded");
  }
  if (params.max_tokens && n + *params.max_tokens > limit) {
    throw invalid_request(fmt::format("This model's maximum context length is {} tokens{}. However, you requested {} "
                                      "tokens ({} in the prompt, {} for the completion).",
                                      limit, why, n + *params.max_tokens, n, *params.max_tokens),
                          max_tokens_param, "context_length_exceeded");
  }
}

std::vector<int32_t> encode(const ServingState& state, const std::string& text, bool add_special_tokens) {
  if (state.tokenizer() == nullptr) {
    throw invalid_request("this server has no tokenizer: give the prompt as token ids", "prompt");
  }
  try {
    return state.tokenizer()->encode(text, add_special_tokens);
  } catch (const Error& e) {
    throw invalid_request("the prompt cannot be tokenized: " + client_message(e.what()), "prompt");
  }
}

}  // namespace

void check_model(const ServingState& state, const std::string& model) {
  if (model != state.options().model_name) {
    throw ApiError(404, fmt::format("The model '{}' does not exist; this server serves '{}'", model,
                                    state.options().model_name),
                   "invalid_request_error", "model", "model_not_found");
  }
}

std::string render_chat(const ServingState& state, const Json& messages, bool add_generation_prompt) {
  const tokenizer::ChatTemplate* tmpl = state.chat_template();
  if (tmpl == nullptr) throw invalid_request("this model has no chat template; use /v1/completions", "messages");
  tokenizer::ChatTemplate::RenderOptions render;
  render.add_generation_prompt = add_generation_prompt;
  try {
    return tmpl->render(messages, render);
  } catch (const Error& e) {
    throw invalid_request("the chat template failed on these messages: " + client_message(e.what()), "messages");
  }
}

std::shared_ptr<GenerationTask> make_completion_task(ServingState& state, const Json& body,
                                                     std::chrono::steady_clock::time_point arrival) {
  CompletionRequest req = parse_completion_request(body, state.options().limits);
  check_model(state, req.gen.model);
  std::vector<PreparedPrompt> prompts;
  for (const PromptInput& p : req.prompts) {
    PreparedPrompt prepared;
    if (const auto* text = std::get_if<std::string>(&p)) {
      prepared.ids = encode(state, *text, /*add_special_tokens=*/true);
      if (prepared.ids.empty()) throw invalid_request("the prompt is empty", "prompt");
    } else {
      prepared.ids = std::get<std::vector<int32_t>>(p);
    }
    check_length(state, prepared.ids, req.gen.params, "max_tokens");
    prompts.push_back(std::move(prepared));
  }
  ResponseOptions options = response_options(state, ApiKind::kCompletion, req.gen);
  return std::make_shared<GenerationTask>(state, std::move(options), std::move(prompts), req.gen.params, req.gen.n,
                                          arrival);
}

std::shared_ptr<GenerationTask> make_chat_task(ServingState& state, const Json& body,
                                               std::chrono::steady_clock::time_point arrival) {
  ChatRequest req = parse_chat_request(body, state.options().limits);
  check_model(state, req.gen.model);
  const std::string text = render_chat(state, req.messages, req.add_generation_prompt);
  PreparedPrompt prompt;
  prompt.ids = encode(state, text, /*add_special_tokens=*/false);  // the template writes BOS itself
  if (prompt.ids.empty()) throw invalid_request("the rendered chat prompt is empty", "messages");
  prompt.opened_think = state.reasoning() && prompt_opens_think(text);
  check_length(state, prompt.ids, req.gen.params,
               body.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens");
  ResponseOptions options = response_options(state, ApiKind::kChat, req.gen);
  options.reasoning = state.reasoning();
  return std::make_shared<GenerationTask>(state, std::move(options), std::vector<PreparedPrompt>{std::move(prompt)},
                                          req.gen.params, req.gen.n, arrival);
}

}  // namespace mlaserve::server
