// What one streamed request measured, and the benchmark's figures over all of them.
//
//   TTFT  time to first token: request sent -> first chunk carrying output
//   ITL   inter-token latency: the gap between consecutive output chunks (pooled over requests)
//   TPOT  time per output token after the first, per request: (E2E - TTFT) / (output tokens - 1)
//   E2E   end-to-end latency: request sent -> the stream's [DONE]
// Throughputs divide by the wall time of the whole run (first send to last completion).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "loadgen/stats.h"

namespace mlaserve::loadgen {

struct RequestRecord {
  bool ok = false;
  std::string error;           // why it failed (HTTP status and body, or the transport error)
  double send_s = 0;           // since the start of the run
  double ttft_s = 0;
  double e2e_s = 0;
  std::vector<double> itl_s;   // gaps between output chunks
  int64_t prompt_tokens = 0;   // from the server's usage, else the request's ids
  int64_t output_tokens = 0;   // from the server's usage, else the output chunks
  std::string finish_reason;
};

struct BenchMetrics {
  int64_t completed = 0;
  int64_t failed = 0;
  double duration_s = 0;
  int64_t total_input_tokens = 0;   // of completed requests
  int64_t total_output_tokens = 0;
  double request_throughput = 0;    // completed requests / s
  double output_throughput = 0;     // output tokens / s
  double total_token_throughput = 0;  // (input + output) tokens / s
  Summary ttft_s, tpot_s, itl_s, e2e_s;
  std::vector<std::string> errors;  // the first few failures, for the report
};

BenchMetrics aggregate(const std::vector<RequestRecord>& records, double duration_s);

// The figures in milliseconds and tokens/s, keys as in vLLM's benchmark_serving results
// ("mean_ttft_ms", "p99_itl_ms", "request_throughput", ...).
nlohmann::json to_json(const BenchMetrics& m);

// The table printed after a run.
std::string format_table(const BenchMetrics& m);

}  // namespace mlaserve::loadgen
