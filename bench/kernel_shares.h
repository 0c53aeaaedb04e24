// Where a traced launch's time goes (decode_step_bench --trace; kernel_trace.h records the
// kernels): each instant of the launch is charged to the oldest kernel running then (the earliest
// started). Under programmatic launch and on side streams several kernels run at once, and the
// ones started after the oldest mostly wait on it (a dependent kernel starts early and waits for
// its predecessor to finish). The charges add up to the span from the first start to the last
// end, with the instants when no kernel runs charged to "(no kernel running)"; summed by kernel
// name they say where a step's time goes. Host code only: tests/bench checks it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mlaserve::bench {

struct TracedKernel {
  std::string name;  // demangled, without arguments or namespaces
  uint64_t start_ns = 0, end_ns = 0;
  uint32_t stream = 0;
};

struct KernelShare {
  std::string name;
  int64_t launches = 0;
  double mean_us = 0.0;     // mean duration, start to end
  double charged_us = 0.0;  // total time charged (the note at the top)
};

// Shares by kernel name, the largest charge first, and the gaps.
std::vector<KernelShare> kernel_shares(const std::vector<TracedKernel>& kernels);

// The kernels of the last of `runs` runs that each launched the same kernels, one after another
// (an eager step traced `runs` times: the first pays for the tracer's start): the kernels.size() /
// runs that started last, in the given order. Fails unless runs >= 1 divides kernels.size().
std::vector<TracedKernel> kernels_of_last_run(const std::vector<TracedKernel>& kernels, int runs);

// One row a kernel, in the given order: index, start and end (us from the first start), duration,
// charge, stream, name. Creates path's folder if it does not exist (as the JSON writers do).
void write_trace_csv(const std::string& path, const std::vector<TracedKernel>& kernels);

// write_trace_csv, then the ten kernels charged the most of the span printed, under a line naming
// `what` ("batch 8", "2048 tokens after 0").
void report_trace(const std::string& path, const std::vector<TracedKernel>& kernels, const std::string& what);

}  // namespace mlaserve::bench
