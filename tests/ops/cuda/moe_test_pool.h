// The experts the MoE GEMV tests route over (moe_experts_cuda_test.cc, moe_experts_fp8_cuda_test.cc).
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

namespace mlaserve::ops::testing {

// A pool of top_k + 3 experts of E, half of it (rounded up) inside the rank's share [E/4, 3E/4)
// and the rest outside, each half drawn at random: tokens routed over it share experts, and a run
// over the share alone leaves the other half's rows untouched.
struct ExpertPool {
  std::vector<int64_t> experts;
  int64_t share_begin = 0, share_end = 0;  // [E/4, 3E/4)
};

inline ExpertPool gemv_test_pool(int64_t num_experts, int64_t top_k, std::mt19937_64& rng) {
  ExpertPool p;
  p.share_begin = num_experts / 4;
  p.share_end = 3 * num_experts / 4;
  std::vector<int64_t> inside, outside;
  for (int64_t e = 0; e < num_experts; ++e) (e >= p.share_begin && e < p.share_end ? inside : outside).push_back(e);
  std::shuffle(inside.begin(), inside.end(), rng);
  std::shuffle(outside.begin(), outside.end(), rng);
  const int64_t n_pool = top_k + 3, n_inside = (n_pool + 1) / 2;
  p.experts.assign(inside.begin(), inside.begin() + n_inside);
  p.experts.insert(p.experts.end(), outside.begin(), outside.begin() + (n_pool - n_inside));
  return p;
}

}  // namespace mlaserve::ops::testing
