// The experts the MoE tests route over (moe_experts_cuda_test.cc, moe_experts_fp8_cuda_test.cc and
// their CUTLASS files).
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

// Rows per expert ([num_experts] counts) of `tokens` tokens each routed to top_k distinct experts
// of `pool` (a decode step over a few experts): with pool.size() < 2·top_k any two tokens share an
// expert, so a step of T >= 2 tokens has experts of 2 .. T rows.
inline std::vector<int32_t> decode_counts(int64_t num_experts, int64_t top_k, std::vector<int64_t> pool,
                                          int64_t tokens, std::mt19937_64& rng) {
  std::vector<int32_t> counts(static_cast<size_t>(num_experts), 0);
  for (int64_t tok = 0; tok < tokens; ++tok) {
    std::shuffle(pool.begin(), pool.end(), rng);
    for (int64_t j = 0; j < top_k; ++j) counts[static_cast<size_t>(pool[static_cast<size_t>(j)])] += 1;
  }
  return counts;
}

// Many experts, most of them empty (the CUTLASS group scheduler's cases): a random quarter of the
// num_experts experts gets 1 .. 300 rows each, the first of that pool one row, the rest none.
struct SparseRouting {
  std::vector<int64_t> pool;    // the experts with rows (and weights)
  std::vector<int32_t> counts;  // [num_experts] rows per expert
};

inline SparseRouting sparse_routing(int64_t num_experts, std::mt19937_64& rng) {
  std::vector<int64_t> all(static_cast<size_t>(num_experts));
  for (int64_t e = 0; e < num_experts; ++e) all[static_cast<size_t>(e)] = e;
  std::shuffle(all.begin(), all.end(), rng);
  SparseRouting r;
  r.pool.assign(all.begin(), all.begin() + num_experts / 4);
  r.counts.assign(static_cast<size_t>(num_experts), 0);
  std::uniform_int_distribution<int32_t> rows(1, 300);
  for (int64_t e : r.pool) r.counts[static_cast<size_t>(e)] = rows(rng);
  r.counts[static_cast<size_t>(r.pool[0])] = 1;
  return r;
}

}  // namespace mlaserve::ops::testing
