// Tile choice of the grouped block-FP8 MoE GEMM (moe_grouped_gemm_fp8_sm89.cuh). Host-only, no
// CUDA types. As for the BF16 kernel (moe_grouped_gemm_sm80_heuristics.h) the choice goes by the
// mean rows per active expert, P / min(E, P), since the split over experts stays on the device:
//   kDecode  (<= 16 rows): 16 x 64 tiles, six stages, 4 warps of 16 x 16 (weight streaming), three
//            CTAs an SM; for experts of at least kWideDecodeMinWeight weights (V3's), 16 x 128
//            tiles at two CTAs an SM (use_wide_decode_tile).
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

inline MoeFp8TileConfig choose_moe_fp8_tiles(int64_t rows, int64_t experts) {
  const int64_t active = std::max<int64_t>(1, std::min(rows, experts));
  const int64_t mean = (rows + active - 1) / active;
  if (mean <= 16) return MoeFp8TileConfig::kDecode;
  if (mean <= 64) return MoeFp8TileConfig::kMid;
  return MoeFp8TileConfig::kPrefill;
}

}  // namespace mlaserve::ops::sm89
