// Tile choice of the grouped block-FP8 MoE GEMM (moe_grouped_gemm_fp8_sm89.cuh). Host-only, no
// CUDA types. As for the BF16 kernel (moe_grouped_gemm_sm80_heuristics.h) the choice goes by the
// mean rows per active expert, P / min(E, P), since the split over experts stays on the device:
//   kDecode  (<= 16 rows): 16 x 64 tiles, six stages, 4 warps of 16 x 16 (weight streaming).
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

inline MoeFp8TileConfig choose_moe_fp8_tiles(int64_t rows, int64_t experts) {
  const int64_t active = std::max<int64_t>(1, std::min(rows, experts));
  const int64_t mean = (rows + active - 1) / active;
  if (mean <= 16) return MoeFp8TileConfig::kDecode;
  if (mean <= 64) return MoeFp8TileConfig::kMid;
  return MoeFp8TileConfig::kPrefill;
}

}  // namespace mlaserve::ops::sm89
