// Tile choice of the grouped block-FP8 MoE GEMM (moe_grouped_gemm_fp8_sm89.cuh). Host-only, no
// CUDA types. As for the BF16 kernel (moe_grouped_gemm_sm80_heuristics.h) the choice goes by the
// mean rows per active expert, P / min(E, P), since the split over experts stays on the device:
//   kDecode  (<= 16 rows): 16 x 64 tiles, six stages, 4 warps of 16 x 16 (weight streaming), three
//            CTAs an SM; for experts of at least kWideDecodeMinWeight weights (V3's), 16 x 128
//            tiles at two CTAs an SM (use_wide_decode_tile); four stages at four CTAs an SM where
//            that makes one wave and three do not (use_four_ctas_decode_tile). Runs of column tiles
//            a CTA where K is short (column_run).
//   kMid     (<= 64):      64 x 128 tiles, four stages, 8 warps of 32 x 32.
//   kPrefill (> 64):       128 x 128 tiles, four stages, 8 warps of 64 x 32. Narrower than the
//            BF16 kernel's 128 x 256: every warp holds two accumulators (the running fp32 sum and
//            the current 128-wide K group's partial sum, promoted with the group's scales), and
//            a 64 x 64 warp tile would need 256 of them per thread.
// On Hopper kAuto runs this kernel below 12 rows per active expert only (kDecode); from 12 the
// wgmma kernel is faster (moe_grouped_gemm_fp8_sm90.h), so kMid and kPrefill run when
// MoeFp8Kernel::kMmaSync is forced (tests, the benchmark's comparison).
#pragma once

#include <algorithm>
#include <cstdint>

namespace mlaserve::ops::sm89 {

enum class MoeFp8TileConfig : uint8_t { kDecode, kMid, kPrefill };

// Weights per expert (weight rows x K) from which the decode tiles are 16 x 128: half the CTAs,
// each streaming twice the bytes through its six stages. The decode step on one H200 (FP8, graph
// ms, two rounds each, 16 x 64 / 16 x 128; bench/NOTES-fp8-gemm.md, 2026-11-30): V3 (5 layers,
// 4096 x 7168 and 7168 x 2048 experts) batch 32 5.422, 5.420 / 5.294, 5.299, 64 6.778, 6.756 /
// 6.613, 6.632, 16 3.823, 3.820 / 3.786, 3.802; V2-Lite (2816 x 2048 and 2048 x 1408) batch 32
// 6.434, 6.402 / 6.534, 6.513, 64 7.040, 7.019 / 7.135, 7.106: its small experts keep 16 x 64.
// As this rule against the binary before it (2026-11-30 20:40, one round): V3 batch 16 3.808 /
// 3.794, 32 5.414 / 5.318, 64 6.779 / 6.608; V2-Lite 32 6.426 / 6.430, 64 7.012 / 6.989.
inline constexpr int64_t kWideDecodeMinWeight = int64_t{1} << 23;

inline bool use_wide_decode_tile(int64_t weight_rows, int64_t k) { return weight_rows * k >= kWideDecodeMinWeight; }

// Column tiles a CTA takes in turn (MoeFp8GemmParams::n_run) where K is short (at most
// kRunMaxGroups 128-wide groups): its K groups for one column tile, then the next tile's through
// the same cp.async ring, so that the ring streams at least kRunMinGroups k-tiles before the CTA
// ends; powers of two dividing the column tiles. A column tile over a short K is a short stream:
// a TP rank's channel share of V3's experts (--expert-split channels) gives down K = 256 under
// TP8, two k-tiles a tile, and one CTA a tile spent its time in the CTA's head (the schedule's
// trip to the expert offsets, the first copies' latency) and its epilogue. A V3 FP8 TP8 rank with
// channels alone on one H200 (decode_step_bench --tp-rank-of 8 --expert-split channels, graph ms,
// two rounds; bench/NOTES-dist.md, 2026-12-01), no runs / at least 8 / 16 / 32 k-tiles: batch 16
// 23.67, 23.65 / 16.95, 16.98 / 16.38, 16.32 / 16.20, 16.14; 32 33.44, 33.43 / 23.52, 23.46 /
// 22.26, 22.21 / 22.04, 21.94; 64 40.19, 40.03 / 28.80, 28.83 / 27.50, 27.52 / 27.60, 27.48. V2-Lite's
// whole experts (down K = 1408, 11 groups) lost 0.2-0.8% at batches 16-128 with runs of two, so
// longer K keeps one tile a CTA.
inline constexpr int64_t kRunMaxGroups = 8;
inline constexpr int64_t kRunMinGroups = 32;

inline int column_run(int64_t k_groups, int64_t column_tiles) {
  int run = 1;
  if (k_groups > kRunMaxGroups) return run;
  while (run * k_groups < kRunMinGroups && column_tiles % (2 * run) == 0) run *= 2;
  return run;
}

// The 16 x 64 decode tile with four stages at four CTAs an SM instead of six at three, where that
// holds the grid in one wave and three CTAs an SM do not: `ctas` is the grid's bound for the
// experts that can have rows, min(P, E) experts of one M tile each (mean <= 16 rows) times the
// column runs. Fewer bytes in flight a CTA, so only there: a V3 FP8 TP8 channel rank
// (decode_step_bench --tp-rank-of 8 --expert-split channels, graph ms, two rounds, one H200,
// 2026-12-01; bench/NOTES-dist.md), three CTAs an SM / four everywhere: batch 8 (gate_up 64 x 8
// CTAs: 1.3 waves of three) 13.35, 13.40 / 11.80, 11.82; but 12 14.57, 14.60 / 16.10, 16.08, 16 15.96,
// 15.99 / 16.87, 16.83, 32 21.61, 21.58 / 22.25, 22.27; V2-Lite FP8 and a TP4 channel rank within 0.7%.
inline bool use_four_ctas_decode_tile(int64_t ctas, int64_t sms) { return ctas > 3 * sms && ctas <= 4 * sms; }

inline MoeFp8TileConfig choose_moe_fp8_tiles(int64_t rows, int64_t experts) {
  const int64_t active = std::max<int64_t>(1, std::min(rows, experts));
  const int64_t mean = (rows + active - 1) / active;
  if (mean <= 16) return MoeFp8TileConfig::kDecode;
  if (mean <= 64) return MoeFp8TileConfig::kMid;
  return MoeFp8TileConfig::kPrefill;
}

}  // namespace mlaserve::ops::sm89
