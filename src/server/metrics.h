// Metrics: the server's counters and histograms, and the Prometheus text exposition of them
// beside the engine's gauges (GET /metrics). Thread-safe.
//
// Exposed (all prefixed mlaserve_):
//   http_requests_total{route, code}        replies by route ("other" for unknown paths) and status
//   requests_finished_total{finish_reason}  engine requests (one per choice): stop, length, abort, error
//   prompt_tokens_total, generation_tokens_total
//   time_to_first_token_seconds             histogram: arrival of the API request -> first token
//   time_per_output_token_seconds           histogram: (last token - first token) / (tokens - 1)
//   e2e_request_latency_seconds             histogram: arrival -> final event
//   num_requests_running, num_requests_waiting   engine gauges (EngineStats)
//   kv_blocks_total, kv_blocks_in_use       cache blocks; in use = neither free nor evictable
//   kv_cache_usage_ratio                    in use / total
//   prefix_cache_queries_total, prefix_cache_hits_total (tokens), prefix_cache_hit_rate
//   generation_tokens_per_second, scheduled_tokens_per_second (all tokens run)   over the last ~10 s
//   preemptions_total, engine_steps_total
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace mlaserve::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // Appends "<name>_bucket{le=...} n", "_sum", "_count" lines.
  void write(std::string& out, const std::string& name) const;

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bound, not cumulative; one more for +Inf
  double sum_ = 0.0;
  int64_t count_ = 0;
};

class Metrics {
 public:
  using Clock = std::chrono::steady_clock;

  Metrics();

  void count_http(const std::string& route, int status);
  // One engine request's end: its timings and token counts.
  void count_finished(FinishReason reason, int64_t prompt_tokens, int64_t output_tokens);
  void observe_ttft(double seconds);
  void observe_tpot(double seconds);
  void observe_e2e(double seconds);
  // Samples the engine's token counters for the rates (called about once a second).
  void sample_rates(const EngineStats& stats, Clock::time_point now);

  // The Prometheus text format (version 0.0.4).
  std::string render(const EngineStats& stats) const;

 private:
  struct RateSample {
    Clock::time_point time;
    int64_t generated = 0, scheduled = 0;
  };

  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> http_;
  std::map<std::string, int64_t> finished_;
  int64_t prompt_tokens_ = 0, generation_tokens_ = 0;
  Histogram ttft_, tpot_, e2e_;
  std::deque<RateSample> samples_;
};

}  // namespace mlaserve::server
