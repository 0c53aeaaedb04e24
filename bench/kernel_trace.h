// What a CUDA graph launch runs, kernel by kernel: each kernel's GPU start and end (CUPTI's
// activity records, the ones Nsight Systems shows, graph nodes included) and its share of the
// launch's span. For benchmarks that need to see inside a graph (decode_step_bench --trace):
// which kernel the step waits on, and where kernels overlap (programmatic launch, side streams).
//
// Each instant of the launch is charged to the oldest kernel running then (the earliest started):
// under programmatic launch and on side streams several kernels run at once, and the ones started
// after the oldest mostly wait on it (a dependent kernel starts early and waits for its
// predecessor to finish). The charges add up to the span from the first start to the last end,
// with the instants when no kernel runs charged to "(no kernel running)"; summed by kernel name
// they say where a step's time goes.
//
// libcupti is loaded when first traced (dlopen: libcupti.so.13, libcupti.so, or $MLASERVE_CUPTI),
// so that the programs run without it; a build without CUPTI's headers fails the call.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mlaserve::bench {

struct TracedKernel {
  std::string name;  // demangled, without arguments or namespaces
  uint64_t start_ns = 0, end_ns = 0;
  uint32_t stream = 0;
};

// Runs `launch` (which queues one or more graph launches and returns) with kernel tracing on, waits
// for the device, and returns the kernels of the last graph launch (those of its correlation id),
// in the order of their ends.
std::vector<TracedKernel> trace_last_graph_launch(const std::function<void()>& launch);

struct KernelShare {
  std::string name;
  int64_t launches = 0;
  double mean_us = 0.0;     // mean duration, start to end
  double charged_us = 0.0;  // total time charged (the note at the top)
};

// Shares by kernel name, the largest charge first, and the gaps; kernels in the order of their ends.
std::vector<KernelShare> kernel_shares(const std::vector<TracedKernel>& kernels);

// One row a kernel: index, start and end (us from the first start), duration, charge, stream, name.
void write_trace_csv(const std::string& path, const std::vector<TracedKernel>& kernels);

}  // namespace mlaserve::bench
