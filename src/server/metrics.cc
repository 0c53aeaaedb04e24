#include "server/metrics.h"

#include <fmt/format.h>

namespace mlaserve::server {
namespace {

void line(std::string& out, const std::string& name, const std::string& type, const std::string& help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void gauge(std::string& out, const std::string& name, double value, const std::string& help) {
  line(out, name, "gauge", help);
  out += fmt::format("{} {}\n", name, value);
}

void counter(std::string& out, const std::string& name, int64_t value, const std::string& help) {
  line(out, name, "counter", help);
  out += fmt::format("{} {}\n", name, value);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::write(std::string& out, const std::string& name) const {
  int64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count_, name, sum_, name, count_);
}

Metrics::Metrics()
    : ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
             80.0}),
      tpot_({0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
             0.4, 0.5, 0.75, 1.0, 2.5}),
      e2e_({0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
            480.0}) {}

void Metrics::count_http(const std::string& route, int status) {
  std::lock_guard lock(mutex_);
  ++http_[{route, status}];
}

void Metrics::count_finished(FinishReason reason, int64_t prompt_tokens, int64_t output_tokens) {
  std::lock_guard lock(mutex_);
  ++finished_[finish_reason_name(reason)];
  prompt_tokens_ += prompt_tokens;
  generation_tokens_ += output_tokens;
}

void Metrics::observe_ttft(double s) {
  std::lock_guard lock(mutex_);
  ttft_.observe(s);
}

void Metrics::observe_tpot(double s) {
  std::lock_guard lock(mutex_);
  tpot_.observe(s);
}

void Metrics::observe_e2e(double s) {
  std::lock_guard lock(mutex_);
  e2e_.observe(s);
}

void Metrics::sample_rates(const EngineStats& stats, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  samples_.push_back({now, stats.num_generated_tokens, stats.num_scheduled_tokens});
  while (samples_.size() > 2 && now - samples_[1].time >= std::chrono::seconds(10)) samples_.pop_front();
}

std::string Metrics::render(const EngineStats& s) const {
  std::lock_guard lock(mutex_);
  std::string out;
  line(out, "mlaserve_http_requests_total", "counter", "HTTP replies by route and status code");
  for (const auto& [key, n] : http_) {
    out += fmt::format("mlaserve_http_requests_total{{route=\"{}\",code=\"{}\"}} {}\n", key.first, key.second, n);
  }
  line(out, "mlaserve_requests_finished_total", "counter", "Engine requests (one per choice) by finish reason");
  for (const char* reason : {"stop", "length", "abort", "error"}) {
    auto it = finished_.find(reason);
    out += fmt::format("mlaserve_requests_finished_total{{finish_reason=\"{}\"}} {}\n", reason,
                       it == finished_.end() ? 0 : it->second);
  }
  counter(out, "mlaserve_prompt_tokens_total", prompt_tokens_, "Prompt tokens of finished requests");
  counter(out, "mlaserve_generation_tokens_total", generation_tokens_, "Generated tokens of finished requests");
  line(out, "mlaserve_time_to_first_token_seconds", "histogram", "Arrival to first generated token");
  ttft_.write(out, "mlaserve_time_to_first_token_seconds");
  line(out, "mlaserve_time_per_output_token_seconds", "histogram", "Mean time between output tokens of a request");
  tpot_.write(out, "mlaserve_time_per_output_token_seconds");
  line(out, "mlaserve_e2e_request_latency_seconds", "histogram", "Arrival to the final token");
  e2e_.write(out, "mlaserve_e2e_request_latency_seconds");

  gauge(out, "mlaserve_num_requests_running", double(s.num_running), "Requests in the running batch");
  gauge(out, "mlaserve_num_requests_waiting", double(s.num_waiting), "Requests waiting to be scheduled");
  const int64_t in_use = int64_t{s.num_cache_blocks} - s.num_free_blocks;
  gauge(out, "mlaserve_kv_blocks_total", double(s.num_cache_blocks), "KV cache blocks (64 tokens each)");
  gauge(out, "mlaserve_kv_blocks_in_use", double(in_use), "KV cache blocks held by requests (not free or evictable)");
  gauge(out, "mlaserve_kv_cache_usage_ratio", s.num_cache_blocks > 0 ? double(in_use) / s.num_cache_blocks : 0.0,
        "Share of KV cache blocks in use");
  counter(out, "mlaserve_prefix_cache_queries_total", s.prefix_query_tokens, "Prompt tokens looked up in the prefix cache");
  counter(out, "mlaserve_prefix_cache_hits_total", s.prefix_hit_tokens, "Prompt tokens found in the prefix cache");
  gauge(out, "mlaserve_prefix_cache_hit_rate",
        s.prefix_query_tokens > 0 ? double(s.prefix_hit_tokens) / double(s.prefix_query_tokens) : 0.0,
        "Prefix cache hits / queries, in tokens, since start");
  counter(out, "mlaserve_preemptions_total", s.num_preemptions, "Sequences preempted for cache blocks");
  counter(out, "mlaserve_engine_steps_total", s.num_steps, "Engine steps run");
  double gen_rate = 0.0, sched_rate = 0.0;
  if (samples_.size() >= 2) {
    const RateSample& a = samples_.front();
    const RateSample& b = samples_.back();
    const double dt = std::chrono::duration<double>(b.time - a.time).count();
    if (dt > 0) {
      gen_rate = double(b.generated - a.generated) / dt;
      sched_rate = double(b.scheduled - a.scheduled) / dt;
    }
  }
  gauge(out, "mlaserve_generation_tokens_per_second", gen_rate, "Generated tokens per second over the last ~10 s");
  gauge(out, "mlaserve_scheduled_tokens_per_second", sched_rate,
        "Tokens run through the model (prompt and generated) per second over the last ~10 s");
  return out;
}

}  // namespace mlaserve::server
