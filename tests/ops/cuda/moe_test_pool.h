// The shapes and routings the MoE tests share (moe_experts_cuda_fixture.h,
// moe_experts_fp8_cuda_fixture.h and the tests that use them): the model shapes, which experts get
// weights, how many rows each expert gets, and which rows a check compares.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <set>
#include <vector>

namespace mlaserve::ops::testing {

struct MoeShape {
  int64_t experts, hidden, inter, top_k;
};

inline constexpr MoeShape kV2Lite{64, 2048, 1408, 6};
inline constexpr MoeShape kV3{256, 7168, 2048, 8};
inline constexpr MoeShape kSmall{8, 512, 256, 2};
// One rank's routed experts under tensor parallelism with --expert-split channels: every expert,
// each cut to its share of the channels (V3 under TP8: 2048 / 8; V2 under TP4: 1536 / 4).
inline constexpr MoeShape kV3Tp8Channels{256, 7168, 256, 8};
inline constexpr MoeShape kV2Tp4Channels{160, 5120, 384, 6};

// Every expert, 0 .. num_experts - 1.
inline std::vector<int64_t> all_experts(int64_t num_experts) {
  std::vector<int64_t> all(static_cast<size_t>(num_experts));
  std::iota(all.begin(), all.end(), 0);
  return all;
}

// `n` experts of [0, num_experts) drawn at random (the first n of a shuffle): the ones a test
// gives weights to.
inline std::vector<int64_t> random_pool(int64_t num_experts, int64_t n, std::mt19937_64& rng) {
  std::vector<int64_t> all = all_experts(num_experts);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(static_cast<size_t>(n));
  return all;
}

// Rows per expert for one step of `tokens` tokens routed to top_k experts each, drawn from `pool`
// only: one token takes top_k distinct experts, one row each; more tokens go to the first 3/4 of
// a shuffled pool with weights 1, 1/2, 1/3, ... (a few large experts, a long tail, some empty).
inline std::vector<int32_t> skewed_counts(const MoeShape& s, const std::vector<int64_t>& pool, int64_t tokens,
                                          std::mt19937_64& rng) {
  std::vector<int32_t> counts(static_cast<size_t>(s.experts), 0);
  std::vector<int64_t> order = pool;
  std::shuffle(order.begin(), order.end(), rng);
  if (tokens == 1) {
    for (int64_t i = 0; i < s.top_k; ++i) counts[order[i % order.size()]] += 1;
    return counts;
  }
  const int64_t active = std::max<int64_t>(1, static_cast<int64_t>(order.size()) * 3 / 4);
  std::vector<double> weights;
  for (int64_t i = 0; i < active; ++i) weights.push_back(1.0 / static_cast<double>(i + 1));
  std::discrete_distribution<int64_t> pick(weights.begin(), weights.end());
  for (int64_t r = 0; r < tokens * s.top_k; ++r) counts[order[pick(rng)]] += 1;
  return counts;
}

// ids for `tokens` tokens: top_k distinct experts of `pool` a token, as the router picks them.
inline std::vector<int32_t> distinct_ids(const MoeShape& s, std::vector<int64_t> pool, int64_t tokens,
                                         std::mt19937_64& rng) {
  std::vector<int32_t> ids;
  for (int64_t t = 0; t < tokens; ++t) {
    std::shuffle(pool.begin(), pool.end(), rng);
    for (int64_t j = 0; j < s.top_k; ++j) ids.push_back(static_cast<int32_t>(pool[static_cast<size_t>(j)]));
  }
  return ids;
}

// [E + 1] expert offsets of [E] row counts: expert e owns rows [offsets[e], offsets[e + 1]).
inline std::vector<int32_t> offsets_of(const std::vector<int32_t>& counts) {
  std::vector<int32_t> offsets(counts.size() + 1, 0);
  std::partial_sum(counts.begin(), counts.end(), offsets.begin() + 1);
  return offsets;
}

// The rows of an expert's range [begin, end) that a check compares: all, or the first, the last
// and one random row.
inline std::vector<int64_t> checked_rows(int64_t begin, int64_t end, bool check_all, std::mt19937_64& rng) {
  std::vector<int64_t> rows;
  if (check_all) {
    for (int64_t r = begin; r < end; ++r) rows.push_back(r);
    return rows;
  }
  const std::set<int64_t> picked = {begin, end - 1, std::uniform_int_distribution<int64_t>(begin, end - 1)(rng)};
  return {picked.begin(), picked.end()};
}

// The small routings of the grouped-GEMM tests over kSmall's 8 experts, kSmallPool with weights:
// groups of one row, partial M tiles (1, 3, 65, 127, 129 rows), empty experts first, inside and
// last, one row in all, one expert, more tiles than SMs (42 M tiles of 128 rows), and shares
// [e0, e1) of the experts as a rank runs them (the other rows must stay poisoned), one of them
// with no rows.
struct RoutingCase {
  std::vector<int32_t> counts;  // [8] rows per expert
  int64_t e0 = 0, e1 = -1;      // the experts run (-1: all)
};
inline const std::vector<int64_t> kSmallPool = {0, 2, 3, 4, 6, 7};
inline const std::vector<RoutingCase> kSmallGroupCases = {
    {{1, 0, 3, 2, 0, 0, 3, 1}},
    {{0, 0, 127, 65, 1, 0, 129, 0}},
    {{0, 0, 0, 0, 0, 0, 0, 1}},
    {{0, 0, 300, 0, 0, 0, 0, 0}},
    {{700, 0, 65, 1500, 1, 0, 2100, 639}},
    {{2, 0, 130, 3, 0, 0, 70, 1}, 2, 6},
    {{2, 0, 0, 3, 0, 0, 0, 1}, 7, 8},
    {{2, 0, 0, 0, 0, 0, 1, 0}, 2, 6},  // a share with no rows
};

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
  SparseRouting r;
  r.pool = random_pool(num_experts, num_experts / 4, rng);
  r.counts.assign(static_cast<size_t>(num_experts), 0);
  std::uniform_int_distribution<int32_t> rows(1, 300);
  for (int64_t e : r.pool) r.counts[static_cast<size_t>(e)] = rows(rng);
  r.counts[static_cast<size_t>(r.pool[0])] = 1;
  return r;
}

}  // namespace mlaserve::ops::testing
