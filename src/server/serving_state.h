// ServingState: everything the request handlers share: the engine, the tokenizer and chat
// template, the server's options, the metrics, the admission count and the draining flag.
// One per server; every member is safe to use from any HTTP thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "engine/engine.h"
#include "server/metrics.h"
#include "server/openai_request.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace mlaserve::server {

enum class ReasoningMode {
  kAuto,  // on when the chat template mentions <think> or </think> (DeepSeek-R1's does; V3's does not)
  kOn,
  kOff,
};

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  uint16_t port = 8000;
  std::string api_key;              // "": no authentication
  std::string model_name;           // what /v1/models lists and requests must name
  size_t max_body_bytes = size_t{4} << 20;
  int64_t max_waiting_requests = 1024;  // engine requests (choices) admitted but not running; more: 503
  int32_t http_threads = 2;
  double drain_timeout_s = 30.0;    // SIGTERM: how long in-flight requests may take to finish
  double keep_alive_timeout_s = 60.0;  // an idle connection is closed after this
  // A response write (a streamed chunk included) that the client does not take within this
  // closes the connection and aborts its generation: a client that stops reading would
  // otherwise hold its sequence (and the output queued for it) until the generation's end.
  double write_timeout_s = 60.0;
  ReasoningMode reasoning = ReasoningMode::kAuto;
  RequestLimits limits;
};

class ServingState {
 public:
  // `engine` (running its own loop) and `tokenizer` (may be null: token-id prompts only) must
  // outlive the state.
  ServingState(Engine& engine, const tokenizer::Tokenizer* tokenizer, ServerOptions options);

  Engine& engine() { return engine_; }
  const tokenizer::Tokenizer* tokenizer() const { return tokenizer_; }
  // The chat template, or null (no tokenizer, or a tokenizer without one).
  const tokenizer::ChatTemplate* chat_template() const { return chat_template_ ? &*chat_template_ : nullptr; }
  bool reasoning() const { return reasoning_; }
  const ServerOptions& options() const { return options_; }
  Metrics& metrics() { return metrics_; }

  // Admission of `n` engine requests: false when the waiting queue would pass its limit.
  bool try_admit(int64_t n);
  void release(int64_t n);
  int64_t num_in_flight() const { return in_flight_.load(); }

  // API requests being generated (a task each); the drain waits for zero.
  void task_started() { ++active_tasks_; }
  void task_ended() { --active_tasks_; }
  int64_t num_active_tasks() const { return active_tasks_.load(); }

  bool draining() const { return draining_.load(); }
  void start_draining() { draining_ = true; }

  // Why the server can no longer generate ("" while it can): /health answers 503 with it, so
  // that a load balancer or a liveness probe takes the server out (a split model whose ranks
  // have failed for good fails every request). Set once at start-up, before serving.
  void set_broken_check(std::function<std::string()> check) { broken_check_ = std::move(check); }
  std::string broken() const { return broken_check_ ? broken_check_() : std::string(); }

 private:
  Engine& engine_;
  const tokenizer::Tokenizer* tokenizer_;
  std::optional<tokenizer::ChatTemplate> chat_template_;
  bool reasoning_ = false;
  ServerOptions options_;
  std::function<std::string()> broken_check_;
  Metrics metrics_;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> active_tasks_{0};
  std::atomic<bool> draining_{false};
};

}  // namespace mlaserve::server
