// POST /v1/completions and /v1/chat/completions: the request parsed (openai_request.h), the
// model name checked (404 model_not_found), the prompts made (a text prompt is encoded with BOS
// as the tokenizer config says; a chat goes through the chat template, which carries BOS
// itself), their lengths checked against the context (400 context_length_exceeded naming the
// limit and whether the KV cache or the model sets it), and a GenerationTask made. The task is
// started by the connection (it needs the connection's wake-up), which is where a full waiting
// queue answers 503.
#pragma once

#include <chrono>
#include <memory>

#include "server/generation_task.h"
#include "server/request_fields.h"
#include "server/serving_state.h"

namespace mlaserve::server {

std::shared_ptr<GenerationTask> make_completion_task(ServingState& state, const Json& body,
                                                     std::chrono::steady_clock::time_point arrival);
std::shared_ptr<GenerationTask> make_chat_task(ServingState& state, const Json& body,
                                               std::chrono::steady_clock::time_point arrival);

// Throws 404 model_not_found unless `model` is the served model's name.
void check_model(const ServingState& state, const std::string& model);

// The rendered chat prompt of `messages` (400 for a template error; 400 without a template).
std::string render_chat(const ServingState& state, const Json& messages, bool add_generation_prompt);

}  // namespace mlaserve::server
