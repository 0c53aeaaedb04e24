// Replays a workload against a running server: request i leaves at its arrival time (a Poisson
// schedule, arrival_schedule.h) or, when --max-concurrency requests are already in flight, as
// soon as one of them finishes. Everything runs as coroutines on one io_context on the calling
// thread: a dispatcher that waits for each arrival and for a free slot, and one coroutine per
// request (completion_client.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "loadgen/completion_client.h"
#include "loadgen/metrics.h"
#include "loadgen/workload.h"

namespace mlaserve::loadgen {

struct LoadOptions {
  ServerAddress server;
  std::string model;            // the "model" field of each request
  std::string target = "/v1/completions";
  double request_rate = 0;      // requests/s, +infinity: all at t = 0
  int64_t max_concurrency = 0;  // 0: no limit
  uint64_t seed = 0;            // of the arrival schedule
  double idle_timeout_s = 600;
  bool progress = true;         // a line on stderr every few seconds
};

struct LoadResult {
  std::vector<RequestRecord> records;  // in workload order
  double duration_s = 0;               // first send to last completion
};

LoadResult run_load(const std::vector<LoadRequest>& requests, const LoadOptions& options);

}  // namespace mlaserve::loadgen
