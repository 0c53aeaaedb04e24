// What the GPU GEMMs' plan cache has done since the process started. A cuBLASLt GEMM of a shape
// (M, strides, pointer alignments, ...) not seen before on a thread builds a plan: layouts and a
// heuristic query, on the host, before its launch. A step of a shape never seen pays that inside
// its forward pass, on the thread that queues it.
#pragma once

#include <cstdint>

namespace mlaserve::ops {

struct GemmPlanStats {
  int64_t plans = 0;   // plans built (every thread and device)
  double host_ms = 0;  // host time spent building them
};

// Zeros in builds without CUDA.
GemmPlanStats gemm_plan_stats();

}  // namespace mlaserve::ops
