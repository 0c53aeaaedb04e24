// Tile choice of the grouped MoE GEMM (moe_grouped_gemm_sm80.cuh). Host-only, no CUDA types.
//
// The host knows P (gathered rows) and E but not how the rows split over experts (that lives
// in device memory and is never read back), so the choice goes by the mean rows per active
// expert, P / min(E, P):
//   kDecode  (<= 16 rows): 16 x 64 tiles, six stages, 4 warps; the GEMMs stream weights (a few
//            rows per expert, HBM-bound), so tiles are narrow for many CTAs in flight and the
//            M tile is one mma.sync row block. B rows are prefetched into L2
//            kDecodeL2PrefetchKTiles k-tiles (1 KB of each row) ahead of the cp.async ring.
//   kPrefillWgmma (> 16):  the Hopper kernel (moe_grouped_gemm_sm90.cuh): 128 x 256 tiles, TMA +
//            mbarrier pipeline, wgmma, the second warpgroup idle in tiles of <= 64 rows. Needs H
//            a multiple of 256 (every released model). On the H200 it beat kMid at every mean it
//            was measured at: 24 rows (V2-Lite, 256 tokens) 302 vs 312 us, 32 (V3, 1024) 5.49 vs
//            6.87 ms, 64 (V3, 2048) 6.01 vs 8.64 ms (bench/NOTES-gemm.md); the sm80 128 x 256
//            mma.sync tile (MoeTilePrefill, 186-320 TFLOPS) is no longer launched.
//   kMid     (> 16, H not a multiple of 256: small test models): 64 x 128 tiles, four stages,
//            8 warps of 32 x 32.
#pragma once

#include <algorithm>
#include <cstdint>

namespace mlaserve::ops::sm80 {

inline constexpr int kDecodeL2PrefetchKTiles = 8;

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

}  // namespace mlaserve::ops::sm80
