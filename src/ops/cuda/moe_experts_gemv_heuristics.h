// When the routed experts run as the grouped GEMV (moe_experts_gemv.cuh) rather than the grouped
// GEMMs (moe_grouped_gemm_sm80.cuh, moe_grouped_gemm_fp8_sm89.cuh / _sm90.cuh). Host-only, no
// CUDA types; moe_experts_cuda and moe_experts_fp8_cuda ask it under MoeExpertsPath::kAuto.
//
// The host knows P (gathered rows, T·k), E and the weights' type, not how the rows split over
// experts. Measured on one H200 (2026-11-29 03:18, bench/NOTES-engine.md; V2-Lite shapes, main's
// router fusion included): in the batch-1 decode step (P = 6) the GEMV takes BF16 from 2.379-2.405
// to 2.267-2.280 ms; at two tokens (P = 12) 2.923 -> 2.948 and from four tokens on it is slower
// (moe_fp8_bench, experts alone: 4 tokens 105.7 against 92.2 us). With e4m3 weights it is slower
// at every size (batch-1 step 2.225 -> 2.307 ms; experts alone at one token 40.0 against 41.5 us,
// at two 65.3 against 59.9): each of its ~1,000 short CTAs quantises the activation row again and
// waits on its own loads, so it does not reach the bandwidth its halved bytes would allow. Hence:
// BF16 up to 8 rows (one token of V2-Lite's top-6 or V3's top-8), e4m3 never under kAuto.
#pragma once

#include <cstdint>

namespace mlaserve::ops::gpu {

inline constexpr int64_t kMoeGemvMaxRows = 8;

inline bool use_moe_gemv(int64_t rows, bool fp8_weights) {
  return !fp8_weights && rows >= 1 && rows <= kMoeGemvMaxRows;
}

}  // namespace mlaserve::ops::gpu
