// The launch shape of the tensor-core GEMVs (gemv_mma.cuh): the routed experts' grouped GEMV
// (moe_experts_gemv_heuristics.h explains the knobs at length) and the dense block-FP8 GEMV
// (linear_fp8_heuristics.h). Host-only, no CUDA types.
//
// Both cut their weight into 16-row tiles and give each CTA a run of consecutive tiles (of one
// expert, or of the dense weight), whose 128-byte pieces its 8 warps stream through rings of
// loads held in registers.
#pragma once

#include <algorithm>
#include <cstdint>

namespace mlaserve::ops::gpu {

struct GemvMmaConfig {
  int ctas_per_sm;    // CTAs an SM the grid is sized for (>= 1); a slot (an expert) gets its share
  int depth;          // ring of weight loads a warp: 2, 4 or 8 pieces of 2 KB (compile-time)
  int tiles_per_cta;  // 0: from ctas_per_sm; else the run length (1 .. kGemvMmaMaxTilesPerCta)
};

// Tiles a CTA streams at most: its partial sums take 4 KB of shared memory a tile (8 warps'
// 16 x 8 fp32 tiles), so a longer run would cost occupancy; the grid grows instead.
inline constexpr int kGemvMmaMaxTilesPerCta = 16;

// Whether a configuration is a valid launch shape.
inline bool gemv_mma_config_ok(const GemvMmaConfig& c) {
  return c.ctas_per_sm >= 1 && (c.depth == 2 || c.depth == 4 || c.depth == 8) && c.tiles_per_cta >= 0 &&
         c.tiles_per_cta <= kGemvMmaMaxTilesPerCta;
}

// CTAs a slot for `tiles` tiles a slot over `slots` slots: about ctas_per_sm x SMs in all (or runs
// of tiles_per_cta tiles), runs of at most max_tiles (<= kGemvMmaMaxTilesPerCta) tiles, at least
// one tile a CTA. A CTA's run is then ceil(tiles / CTAs) tiles at most.
inline int64_t gemv_mma_ctas(int64_t tiles, int64_t slots, const GemvMmaConfig& c, int sms,
                             int64_t max_tiles = kGemvMmaMaxTilesPerCta) {
  const int64_t target = int64_t{c.ctas_per_sm} * sms;
  int64_t ctas = c.tiles_per_cta > 0 ? (tiles + c.tiles_per_cta - 1) / c.tiles_per_cta : (target + slots - 1) / slots;
  ctas = std::max(ctas, (tiles + max_tiles - 1) / max_tiles);
  return std::min(ctas, tiles);
}

}  // namespace mlaserve::ops::gpu
