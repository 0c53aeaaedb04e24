// GenerationTask: one completions or chat request in flight: its engine requests (one per
// choice), their events turned into the answer (ResponseBuilder), its metrics, and its abort.
//
//   task->start(wake)   submits every choice; `wake` is called on the engine's thread when
//                       events are queued (coalesced: once until the next poll()); it must
//                       only post work to the connection's executor
//   task->poll()        on that executor: takes the queued events; streaming: the SSE text
//   task->finished()    every choice has had its final event
//   task->abort()       the client went away: every unfinished choice is aborted in the engine
//                       (its blocks are freed at the start of the next step)
// The destructor aborts what is unfinished, so a connection that dies in any way frees its
// requests.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/request_stream.h"
#include "server/response_builder.h"
#include "server/serving_state.h"

namespace mlaserve::server {

struct PreparedPrompt {
  std::vector<int32_t> ids;
  bool opened_think = false;  // the rendered chat prompt ends inside <think>
};

class GenerationTask : public std::enable_shared_from_this<GenerationTask> {
 public:
  using Clock = std::chrono::steady_clock;

  GenerationTask(ServingState& state, ResponseOptions options, std::vector<PreparedPrompt> prompts,
                 SamplingParams params, int32_t n, Clock::time_point arrival);
  ~GenerationTask();
  GenerationTask(const GenerationTask&) = delete;
  GenerationTask& operator=(const GenerationTask&) = delete;

  // Throws ApiError: 503 when the waiting queue is full, 400 when the engine refuses a choice.
  void start(std::function<void()> wake);
  std::string poll();
  bool finished() const { return builder_.finished(); }
  bool streaming() const { return stream_; }
  // Not streaming, after finished(): the status and JSON body of the answer.
  int reply_status() const;
  std::string reply_body() const;
  void abort();

 private:
  struct Choice {
    std::shared_ptr<RequestStream> stream;
    Clock::time_point first_token{};
    bool has_first_token = false;
    bool aborted = false;  // abort() asked the engine to end it
    int64_t num_prompt_tokens = 0, num_output_tokens = 0;  // as of the last event taken
  };
  void on_event(size_t index, const RequestOutput& ev, std::string& out);

  ServingState& state_;
  const bool stream_;
  std::vector<PreparedPrompt> prompts_;
  SamplingParams params_;
  int32_t n_;
  Clock::time_point arrival_;
  ResponseBuilder builder_;
  std::vector<Choice> choices_;
  int64_t admitted_ = 0;  // engine requests counted in the admission queue
  bool started_ = false;
  std::shared_ptr<std::atomic<bool>> wake_pending_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace mlaserve::server
