#include "server/serving_state.h"

#include "core/logging.h"

namespace mlaserve::server {

ServingState::ServingState(Engine& engine, const tokenizer::Tokenizer* tokenizer, ServerOptions options)
    : engine_(engine), tokenizer_(tokenizer), options_(std::move(options)) {
  if (tokenizer_ != nullptr && tokenizer_->config().chat_template) {
    chat_template_.emplace(tokenizer::ChatTemplate::from_tokenizer(*tokenizer_));
  }
  // R1's templates open the block ("<think>\n" after the generation prompt) or strip earlier
  // turns' reasoning ("</think>"); V2's and V3's mention neither.
  const std::optional<std::string>& tmpl = tokenizer_ != nullptr ? tokenizer_->config().chat_template : std::nullopt;
  const bool template_thinks = tmpl && tmpl->find("think>") != std::string::npos;
  reasoning_ = options_.reasoning == ReasoningMode::kOn ||
               (options_.reasoning == ReasoningMode::kAuto && template_thinks);
  MLA_LOG_INFO("serving '{}': chat template {}, reasoning_content {}", options_.model_name,
               chat_template_ ? "yes" : "none", reasoning_ ? "on" : "off");
}

bool ServingState::try_admit(int64_t n) {
  const int64_t running = engine_.stats().num_running;
  int64_t cur = in_flight_.load();
  while (true) {
    if (cur - running + n > options_.max_waiting_requests) return false;
    if (in_flight_.compare_exchange_weak(cur, cur + n)) return true;
  }
}

void ServingState::release(int64_t n) { in_flight_ -= n; }

}  // namespace mlaserve::server
