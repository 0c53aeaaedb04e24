#include "server/generation_task.h"

#include <fmt/format.h>

#include "core/error.h"

namespace mlaserve::server {
namespace {

std::vector<ChoiceSpec> choice_specs(const std::vector<PreparedPrompt>& prompts, int32_t n) {
  std::vector<ChoiceSpec> specs;
  for (size_t p = 0; p < prompts.size(); ++p) {
    for (int32_t j = 0; j < n; ++j) {
      specs.push_back({static_cast<int64_t>(specs.size()), j == 0, prompts[p].opened_think});
    }
  }
  return specs;
}

}  // namespace

GenerationTask::GenerationTask(ServingState& state, ResponseOptions options, std::vector<PreparedPrompt> prompts,
                               SamplingParams params, int32_t n, Clock::time_point arrival)
    : state_(state),
      stream_(options.stream),
      prompts_(std::move(prompts)),
      params_(std::move(params)),
      n_(n),
      arrival_(arrival),
      builder_(std::move(options), choice_specs(prompts_, n)) {}

GenerationTask::~GenerationTask() {
  abort();
  state_.release(admitted_);
  if (started_) state_.task_ended();
}

void GenerationTask::start(std::function<void()> wake) {
  MLA_CHECK(!started_, "a generation task starts once");
  const auto total = static_cast<int64_t>(prompts_.size()) * n_;
  const int64_t limit = state_.options().max_waiting_requests;
  if (total > limit) {  // never admitted, however long the client waits: not a 503
    throw invalid_request(
        fmt::format("the request asks for {} generations (prompts x n); this server queues at most {}", total, limit),
        "n");
  }
  if (!state_.try_admit(total)) {
    throw ApiError(503, "the server is at capacity (waiting queue full); retry later", "service_unavailable");
  }
  admitted_ = total;
  started_ = true;
  state_.task_started();
  auto pending = wake_pending_;
  auto on_output = [pending, wake = std::move(wake)] {
    if (!pending->exchange(true)) wake();
  };
  for (const PreparedPrompt& prompt : prompts_) {
    for (int32_t j = 0; j < n_; ++j) {
      GenerationRequest req{prompt.ids, params_, on_output};
      if (params_.seed) req.params.seed = *params_.seed + static_cast<uint64_t>(j);  // n different choices
      try {
        choices_.push_back({state_.engine().add_request(std::move(req))});
      } catch (const Error& e) {  // refused by the engine's validation: nothing of this task runs
        abort();
        throw invalid_request(client_message(e.what()));
      }
    }
  }
}

std::string GenerationTask::poll() {
  wake_pending_->store(false);
  std::string out;
  for (size_t i = 0; i < choices_.size(); ++i) {
    while (std::optional<RequestOutput> ev = choices_[i].stream->try_next()) on_event(i, *ev, out);
  }
  return out;
}

void GenerationTask::on_event(size_t index, const RequestOutput& ev, std::string& out) {
  Choice& c = choices_[index];
  c.num_prompt_tokens = ev.num_prompt_tokens;
  c.num_output_tokens = ev.num_output_tokens;
  const auto now = Clock::now();
  if (!c.has_first_token && !ev.token_ids.empty()) {
    c.has_first_token = true;
    c.first_token = now;
    state_.metrics().observe_ttft(std::chrono::duration<double>(now - arrival_).count());
  }
  if (ev.finished) {
    state_.metrics().count_finished(ev.finish_reason, ev.num_prompt_tokens, ev.num_output_tokens);
    state_.metrics().observe_e2e(std::chrono::duration<double>(now - arrival_).count());
    if (ev.num_output_tokens > 1) {
      state_.metrics().observe_tpot(std::chrono::duration<double>(now - c.first_token).count() /
                                    double(ev.num_output_tokens - 1));
    }
    state_.release(1);
    --admitted_;
  }
  out += builder_.add(index, ev);
}

int GenerationTask::reply_status() const {
  std::optional<ApiError> err = builder_.error();
  return err ? err->status() : 200;
}

std::string GenerationTask::reply_body() const {
  std::optional<ApiError> err = builder_.error();
  return dump_json(err ? err->body() : builder_.body());
}

void GenerationTask::abort() {
  for (size_t i = 0; i < choices_.size(); ++i) {
    Choice& c = choices_[i];
    if (builder_.choice_finished(i) || c.aborted) continue;
    c.aborted = true;
    state_.engine().abort(c.stream->id());
    // Nobody takes its final event any more: it counts as aborted with what it had produced.
    state_.metrics().count_finished(FinishReason::kAbort, c.num_prompt_tokens, c.num_output_tokens);
  }
}

}  // namespace mlaserve::server
