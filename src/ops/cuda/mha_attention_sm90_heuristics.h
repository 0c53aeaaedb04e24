// Tiling and grid-order heuristics of the sm90 MHA prefill kernel (mha_attention_sm90.cuh).
// Host and device, no CUDA types.
#pragma once

#include <algorithm>
#include <cstdint>

namespace mlaserve::ops::sm90::mha {

// Query rows per CTA: two consumer warpgroups of one wgmma M tile (64 rows) each.
inline constexpr int kBlockM = 128;
// Keys per pipeline stage. With qk dim 192 and v dim 128 a stage is 48 KB of K + 32 KB of V;
// Q (48 KB) and two stages (160 KB) fill the SM's 227 KB. 128 keys make S a m64n128 wgmma per
// consumer warpgroup: 64 fp32 accumulators per thread for S and 64 for O, which leaves the
// registers for the next tile's S while P V of this one runs (intra-warpgroup overlap).
inline constexpr int kBlockN = 128;
inline constexpr int kStages = 2;

// Grid order. Each CTA streams its head's whole K/V (320 * 2 bytes per key); CTAs of one head
// that run together share it in L2, CTAs of different heads do not. 128 heads at 4k tokens
// hold 335 MB of K/V, so a head-blind order re-reads K/V from HBM for every query block. The
// grid is therefore cut into groups of heads whose K/V fits in half the L2; inside a group the
// query blocks run from the last (the longest under the causal mask) to the first, every
// head of the group at one query block before the next, so that the heaviest CTAs start first
// and the wave ends on short ones. Powers of two keep the groups equal for 16 and 128 heads.
inline int heads_per_group(int64_t n_heads, int64_t tk, int64_t l2_bytes) {
  const int64_t kv_bytes_per_head = std::max<int64_t>(1, tk) * (192 + 128) * 2;
  const int64_t fit = std::max<int64_t>(1, l2_bytes / 2 / kv_bytes_per_head);
  int64_t g = 1;
  while (g * 2 <= fit && g * 2 <= n_heads) g *= 2;
  return static_cast<int>(g);
}

}  // namespace mlaserve::ops::sm90::mha
