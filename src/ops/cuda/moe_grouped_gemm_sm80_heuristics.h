// Tile choice of the grouped MoE GEMM (moe_grouped_gemm_sm80.cuh). Host-only, no CUDA types.
//
// The host knows P (gathered rows) and E but not how the rows split over experts (that lives
// in device memory and is never read back), so the choice goes by the mean rows per active
// expert, P / min(E, P):
//   kDecode  (<= 16 rows): 16 x 64 tiles, six stages, 4 warps; the GEMMs stream weights (a few
//            rows per expert, HBM-bound), so tiles are narrow for many CTAs in flight and the
//            M tile is one mma.sync row block.
//   kMid     (<= 64):      64 x 128 tiles, four stages, 8 warps of 32 x 32.
//   kPrefill (> 64):       128 x 256 tiles, four stages, 8 warps of 64 x 64 (the warp tile that
//            keeps ldmatrix traffic under the shared-memory bandwidth at mma.sync rates).
#pragma once

#include <algorithm>
#include <cstdint>

namespace mlaserve::ops::sm80 {

enum class MoeTileConfig : uint8_t { kDecode, kMid, kPrefill };

// `hidden` (H, the down GEMM's N) must be a multiple of 128; the 256-wide prefill tile also
// needs a multiple of 256 (every released model; small test models fall back to kMid).
inline MoeTileConfig choose_moe_tiles(int64_t rows, int64_t experts, int64_t hidden) {
  const int64_t active = std::max<int64_t>(1, std::min(rows, experts));
  const int64_t mean = (rows + active - 1) / active;
  if (mean <= 16) return MoeTileConfig::kDecode;
  if (mean <= 64 || hidden % 256 != 0) return MoeTileConfig::kMid;
  return MoeTileConfig::kPrefill;
}

}  // namespace mlaserve::ops::sm80
