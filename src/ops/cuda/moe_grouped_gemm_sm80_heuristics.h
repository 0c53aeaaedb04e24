// Tile choice of the grouped MoE GEMM (moe_grouped_gemm_sm80.cuh). Host-only, no CUDA types.
//
// The host knows P (gathered rows) and E but not how the rows split over experts (that lives
// in device memory and is never read back), so the choice goes by the mean rows per active
// expert, P / min(E, P):
//   kDecode  (<= 16 rows): 16 x 64 tiles, 4 warps; the GEMMs stream weights (a few rows per
//            expert, HBM-bound), so tiles are narrow for many CTAs in flight and the M tile is
//            one mma.sync row block. The depth of the cp.async ring: choose_decode_ring below.
//   kPrefillWgmma (> 16):  the Hopper kernel (moe_grouped_gemm_sm90.cuh): 128 x 256 tiles, TMA +
//            mbarrier pipeline, wgmma, the second warpgroup idle in tiles of <= 64 rows. Needs H
//            a multiple of 256 (every released model). On the H200 it beat kMid at every mean it
//            was measured at: 24 rows (V2-Lite, 256 tokens) 302 vs 312 us, 32 (V3, 1024) 5.49 vs
//            6.87 ms, 64 (V3, 2048) 6.01 vs 8.64 ms (bench/NOTES-gemm.md); the sm80 128 x 256
//            mma.sync tile (MoeTilePrefill, 186-320 TFLOPS) is no longer launched.
//   kMid     (> 16, H not a multiple of 256: small test models): 64 x 128 tiles, four stages,
//            8 warps of 32 x 32.
//
// The decode tiles' ring. Streaming weights at the HBM rate needs rate x latency bytes in flight:
// on the H200 4.2 TB/s x ~2 us = ~8.4 MB, ~64 KB on each of 132 SMs. A stage holds 16 A rows and
// 64 B (weight) rows of 128 bytes, 10 KB of which 8 KB weights, and STAGES - 1 stages are in
// flight, so an SM has (resident CTAs) x (STAGES - 1) x 8 KB in flight, its resident CTAs sharing
// ~227 KB. The one ring of before (6 stages, 3 CTAs an SM: 120 KB an SM when full, now kStream)
// streams V2-Lite's 8-token step (34 experts, 1,496 + 1,088 CTAs, many waves) at 95% of copy
// (148 us, H200, bench/decode_gemv_bench) but one token at 65% (37.9 us for 104 MB, the HBM floor
// ~25 us): 6 experts x 44 N tiles = 264 gate_up CTAs are only 2 an SM (80 KB in flight), 6 x 32 =
// 192 down CTAs ~1.5 an SM (7.7 MB in all, under the 8.4). So a grid that fits the GPU in one
// wave gets the deepest ring that keeps it resident (ctas <= per-SM count x SMs), but no deeper
// than 5 stages at 4 an SM: V2-Lite's one token runs gate_up (264 CTAs) and down (192) both at
// 5 stages, 2 an SM each (64 KB in flight an SM, 8.4 MB in all), so that the down GEMM's CTAs
// fit the SMs beside gate_up's and issue their first weight k-tiles before their
// programmatic-launch wait while gate_up still runs (moe_grouped_gemm_sm80.cuh); the 11-stage
// ring (2 an SM, 220 KB: an SM full with gate_up's two) measured 31.3 us there against 30.1 for
// 5 stages (H200, decode_gemv_bench, one run each, noise ~1 us, before the down GEMM loaded
// ahead of its wait; the bench still times every ring, "auto" being this choice). The grid
// size is the host's upper bound of the M tiles (moe_grouped_gemm_sm80.cuh), the rows' true split
// being on the device; past 7 an SM the grid runs in waves and keeps kStream.
#pragma once

#include <algorithm>
#include <cstdint>

namespace mlaserve::ops::sm80 {

enum class MoeTileConfig : uint8_t { kDecode, kMid, kPrefillWgmma };

// `hidden` (H, the down GEMM's N) must be a multiple of 128; the 256-wide prefill tile also
// needs a multiple of 256.
inline MoeTileConfig choose_moe_tiles(int64_t rows, int64_t experts, int64_t hidden) {
  const int64_t active = std::max<int64_t>(1, std::min(rows, experts));
  const int64_t mean = (rows + active - 1) / active;
  if (mean <= 16) return MoeTileConfig::kDecode;
  if (hidden % 256 != 0) return MoeTileConfig::kMid;
  return MoeTileConfig::kPrefillWgmma;
}

// Whether a prefill-sized plain product (the down projection) runs CUTLASS's grouped kernel
// (moe_grouped_gemm_cutlass.h: persistent, 128 x 256 tiles) instead of kPrefillWgmma: when the
// mean expert's output holds at least 16 of its tiles (mean rows x N >= 2^19), where the
// persistent walk pays. Measured on one H200 (moe_fp8_bench --sections bf16-shapes, uniform
// routing, 2026-11-29 08:19), CUTLASS against the wgmma kernel, us: V3 (N 7168) 128 rows an
// expert 2057 vs 2449, 256: 3544 vs 4042, 512: 6775 vs 7407; V2-Lite (N 2048) 384: 283.6 vs 337.7,
// 768: 533.0 vs 669.9, 1536: 928.6 vs 1202.0; not below (V3 64: 1952 vs 1933; V2-Lite 192:
// 201.7 vs 197.2, 150: 184.9 vs 180.1). With SwiGLU the split product + silu_mul lost everywhere
// measured but at V3's 4096 tokens, so gate_up stays on the fused kernel.
inline bool use_cutlass_grouped_bf16(bool swiglu, int64_t rows, int64_t experts, int64_t n_out) {
  const int64_t active = std::max<int64_t>(1, std::min(rows, experts));
  const int64_t mean = (rows + active - 1) / active;
  return !swiglu && mean * n_out >= (int64_t{1} << 19);
}

// Whether a prefill-sized SwiGLU product (gate_up) runs the wgmma kernel's 192 x 128 tiles
// (Bf16Tile::k192x128) instead of its 128 x 256 ones: when the mean expert has 129 .. 192 rows,
// which 128-row tiles cover with two M tiles (each loading the expert's weight tiles) and
// 192-row tiles with one. Measured on one H200 (moe_fp8_bench --sections bf16-shapes, uniform
// routing, 2026-11-29 12:02), 192 x 128 against 128 x 256, gate_up, us: V2-Lite 150 rows an
// expert 292.1 vs 327.2, 192: 325.3 vs 346.1; slower outside the window (V2-Lite 96: 252.8 vs
// 231.5, 384: 628.0 vs 580.1; V3 128: 5379 vs 4654) and on the plain down product (V2-Lite 150:
// 186.0 vs 188.8, 192: 206.9 vs 204.8), which keeps 128 x 256.
inline bool use_wgmma_m192(bool swiglu, int64_t rows, int64_t experts) {
  const int64_t active = std::max<int64_t>(1, std::min(rows, experts));
  const int64_t mean = (rows + active - 1) / active;
  return swiglu && mean > 128 && mean <= 192;
}

// The decode tiles' cp.async ring (the tile types are in moe_grouped_gemm_sm80.cuh). In flight
// per SM when every slot is taken: stages - 1 k-tiles of 8 KB x CTAs an SM.
enum class MoeDecodeRing : uint8_t {
  kAuto,     // choose_decode_ring for each of the two GEMMs (what the model runs)
  k2PerSm,   // 11 stages (110 KB), 2 CTAs an SM: 160 KB in flight an SM
  k3PerSm,   // 7 stages (70 KB), 3 an SM: 144 KB
  k4PerSm,   // 5 stages (50 KB), 4 an SM: 128 KB
  k5PerSm,   // 4 stages (40 KB), 5 an SM: 120 KB
  k7PerSm,   // 3 stages (30 KB), 7 an SM: 112 KB
  kStream,   // 6 stages (60 KB), 3 an SM, for grids of many waves (measured, see above)
};

// The ring for a grid of `ctas` CTAs on `sms` SMs: the deepest that keeps the grid resident, up
// to 5 stages (k4PerSm; the note above says why not k2PerSm or k3PerSm, which stay for tests and
// the bench).
inline MoeDecodeRing choose_decode_ring(int64_t ctas, int64_t sms) {
  const int64_t per_sm = (ctas + sms - 1) / std::max<int64_t>(1, sms);
  if (per_sm <= 4) return MoeDecodeRing::k4PerSm;
  if (per_sm <= 5) return MoeDecodeRing::k5PerSm;
  if (per_sm <= 7) return MoeDecodeRing::k7PerSm;
  return MoeDecodeRing::kStream;
}

}  // namespace mlaserve::ops::sm80
