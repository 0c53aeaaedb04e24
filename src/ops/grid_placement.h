// Where an op's GPU kernels run: alone, or beside kernels on another stream that hold part of the
// GPU meanwhile (the model's side stream). Launch plans read it, so that a grid sized for the whole
// card neither runs a second wave beside the other kernels nor starves them when they are the
// longer branch: the FP8 swap-AB GEMM's split plans (linear_fp8.h: the query's first projection
// beside kv_a_proj) and the routed experts' down GEMV (moe_experts.h: beside the shared experts).
// Timing only: the arithmetic is the same, and the CPU ignores it.
#pragma once

#include <cstdint>

namespace mlaserve::ops {

enum class GridPlacement : uint8_t { kAlone, kBeside };

}  // namespace mlaserve::ops
