// What a CUDA graph launch, or any run of launches, runs kernel by kernel: each kernel's GPU start
// and end (CUPTI's activity records, the ones Nsight Systems shows, graph nodes included). For
// benchmarks that need to see inside a step (decode_step_bench --trace: which kernel the graph
// waits on, where kernels overlap; prefill_step_bench --trace: an eager prefill step);
// kernel_shares.h says where the time goes.
//
// libcupti is loaded when first traced (dlopen: libcupti.so.13, libcupti.so, or $MLASERVE_CUPTI),
// so that the programs run without it; a build without CUPTI's headers fails the call. Once it has
// traced, CUPTI stays attached and later launches in the process run slower: trace after timing.
#pragma once

#include <functional>
#include <vector>

#include "kernel_shares.h"

namespace mlaserve::bench {

// Runs `launch` (which queues one or more graph launches and returns) with kernel tracing on, waits
// for the device, and returns the kernels of the last graph launch (those of its correlation id),
// in the order of their ends.
std::vector<TracedKernel> trace_last_graph_launch(const std::function<void()>& launch);

// Runs `run` `runs` times with kernel tracing on (each run finished on the device before the next)
// and returns the kernels of the last run (kernels_of_last_run: every run must launch the same
// kernels), in the order of their ends. The tracer's start-up delays the first run's kernels by
// milliseconds, so an eager step is traced at least twice.
std::vector<TracedKernel> trace_last_run(const std::function<void()>& run, int runs);

}  // namespace mlaserve::bench
