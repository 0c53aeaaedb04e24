// Random MoE routings for the expert benchmarks (moe_fp8_bench, decode_gemv_bench): expert offsets
// as the routing op leaves them, for decode-size token counts.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace mlaserve::bench {

// Expert offsets [E + 1] i32 (on the GPU) of random routings of `tokens` tokens, each to top_k
// distinct experts (a partial Fisher-Yates shuffle), as many routings as it takes for their
// active experts' weights (expert_bytes each) to add up to rotate_bytes, and at least two, so that
// timed runs that rotate through them read their weights from HBM, not L2. active_mean: the mean
// number of active experts of a routing. Seeded by (tokens, experts): the same sets every run.
inline std::vector<Tensor> random_routings(int64_t experts, int64_t top_k, int64_t tokens, double expert_bytes,
                                           double rotate_bytes, double& active_mean) {
  std::mt19937_64 rng(static_cast<uint64_t>(tokens) * 7919 + static_cast<uint64_t>(experts));
  std::vector<Tensor> sets;
  double active_sum = 0.0, rotated = 0.0;
  while (rotated < rotate_bytes || sets.size() < 2) {
    std::vector<int64_t> ids(static_cast<size_t>(experts));
    for (int64_t e = 0; e < experts; ++e) ids[e] = e;
    std::vector<int32_t> counts(static_cast<size_t>(experts), 0);
    for (int64_t tok = 0; tok < tokens; ++tok) {
      for (int64_t j = 0; j < top_k; ++j) {
        std::swap(ids[j], ids[std::uniform_int_distribution<int64_t>(j, experts - 1)(rng)]);
        counts[ids[j]] += 1;
      }
    }
    Tensor off = Tensor::empty({experts + 1}, DType::kI32);
    int32_t* o = off.data<int32_t>();
    o[0] = 0;
    int64_t active = 0;
    for (int64_t e = 0; e < experts; ++e) {
      o[e + 1] = o[e] + counts[e];
      active += counts[e] > 0 ? 1 : 0;
    }
    sets.push_back(off.to(Device::kCUDA));
    active_sum += static_cast<double>(active);
    rotated += static_cast<double>(active) * expert_bytes;
  }
  active_mean = active_sum / static_cast<double>(sets.size());
  return sets;
}

}  // namespace mlaserve::bench
