// Timing helpers shared by the GPU benchmark programs: the median of a sample, and CUDA-event
// timing of a callable on a stream (the median of `reps` timed runs, in microseconds), eagerly or
// as calls captured in one CUDA graph.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <vector>

#include "core/cuda_check.h"

namespace mlaserve::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

class Timer {
 public:
  Timer() {
    MLA_CUDA_CHECK(cudaEventCreate(&start_));
    MLA_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~Timer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Median microseconds of `reps` timed runs of fn(i) on stream.
  template <class Fn>
  double median_us(cudaStream_t stream, int reps, Fn fn) {
    std::vector<double> us;
    for (int i = 0; i < reps; ++i) {
      MLA_CUDA_CHECK(cudaEventRecord(start_, stream));
      fn(i);
      MLA_CUDA_CHECK(cudaEventRecord(stop_, stream));
      MLA_CUDA_CHECK(cudaEventSynchronize(stop_));
      float ms = 0.0f;
      MLA_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
      us.push_back(ms * 1e3);
    }
    return median(us);
  }

  // Microseconds per call: `calls` calls of fn(i) captured in one CUDA graph, the median of
  // `replays` timed replays divided by calls (after fn(0) and fn(1) eagerly and one untimed
  // replay), so that launch gaps between calls are the graph's, as in the engine's decode steps.
  template <class Fn>
  double graph_us(cudaStream_t stream, int calls, int replays, Fn fn) {
    fn(0);
    fn(1 % calls);
    MLA_CUDA_CHECK(cudaStreamSynchronize(stream));
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    MLA_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < calls; ++i) fn(i);
    MLA_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    MLA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    MLA_CUDA_CHECK(cudaGraphLaunch(exec, stream));
    const double us = median_us(stream, replays, [&](int) { MLA_CUDA_CHECK(cudaGraphLaunch(exec, stream)); }) / calls;
    MLA_CUDA_CHECK(cudaGraphExecDestroy(exec));
    MLA_CUDA_CHECK(cudaGraphDestroy(graph));
    return us;
  }

 private:
  cudaEvent_t start_, stop_;
};

}  // namespace mlaserve::bench
