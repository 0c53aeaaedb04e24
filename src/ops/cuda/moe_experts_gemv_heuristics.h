// When the routed experts run as the grouped GEMV (moe_experts_gemv.cuh) rather than the grouped
// GEMMs (moe_grouped_gemm_sm80.cuh, moe_grouped_gemm_fp8_sm89.cuh / _sm90.cuh). Host-only, no
// CUDA types; moe_experts_cuda and moe_experts_fp8_cuda ask it under MoeExpertsPath::kAuto.
//
// The host knows P (gathered rows, T·k) and E, not how the rows split over experts. The GEMV
// reads each active expert's weights once per 8 rows of that expert and quantises (FP8) each CTA's
// rows itself, so it wins while the experts have a few rows each, i.e. at decode batch sizes,
// where the grouped GEMMs' 16-row tiles stream the same bytes with more overhead (two extra
// quantiser launches for FP8). Starting point, not yet measured: P <= 16 (V2-Lite up to 2 tokens,
// V3 up to 2); bench/moe_fp8_bench.cu's v2l-layer section times both paths at 1, 2, 4 and 8 tokens
// to set it.
#pragma once

#include <cstdint>

namespace mlaserve::ops::gpu {

inline constexpr int64_t kMoeGemvMaxRows = 16;

inline bool use_moe_gemv(int64_t rows) { return rows >= 1 && rows <= kMoeGemvMaxRows; }

}  // namespace mlaserve::ops::gpu
