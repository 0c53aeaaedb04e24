// What the MoE experts' CUTLASS grouped GEMMs share on the host: the run-time options of the
// group scheduler's walk. Two kernels use them, CUTLASS 4.2's grouped (ptr-array) GEMMs for the
// BF16 experts (moe_grouped_gemm_cutlass.h) and for the block-FP8 ones
// (moe_grouped_gemm_fp8_cutlass.h); the device code they share is moe_cutlass_grouped.cuh.
// Internal to src/ops/cuda (and its benchmark and tests).
#pragma once

#include <cstdint>

namespace mlaserve::ops::sm90::cutlass_grouped {

// The group scheduler's walk over each group's output tiles (run-time arguments; moe_fp8_bench
// sweeps them).
enum class Raster : uint8_t {
  kAlongM,  // CUTLASS's default for grouped GEMMs: consecutive CTAs take consecutive M tiles
  kAlongN,  // consecutive CTAs take consecutive N tiles (the A tile stays hot in L2)
};
struct Options {
  int max_swizzle = 1;            // 1, 2, 4 or 8: tiles of the other side walked together
  Raster raster = Raster::kAlongM;
};

}  // namespace mlaserve::ops::sm90::cutlass_grouped
