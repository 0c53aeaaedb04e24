// The host sampler's rank order (ops/rank_order.h) against the comparator sort it replaced.
#include "ops/rank_order.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.h"

namespace mlaserve::ops {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// sample_cpu's order before rank_order: value descending, then id ascending (NaN-free values).
std::vector<int32_t> comparator_order(const std::vector<float>& v) {
  std::vector<int32_t> ids(v.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
  return ids;
}

// Rows as sampled rows look: normal logits, many exact ties (coarse values), both zeros, masked
// tokens (-inf), an occasional +inf, subnormals and values of every magnitude; V from 1 to
// DeepSeek's 129,280.
TEST(RankOrder, EqualsTheComparatorSortOnEveryKindOfRow) {
  std::mt19937 rng(17);
  for (const size_t n : {size_t{1}, size_t{2}, size_t{7}, size_t{100}, size_t{2049}, size_t{129280}}) {
    for (int kind = 0; kind < 4; ++kind) {
      SCOPED_TRACE(testing::Message() << "n " << n << " kind " << kind);
      std::normal_distribution<float> normal(0.0f, 3.0f);
      std::uniform_int_distribution<int> pick(0, 99);
      std::vector<float> v(n);
      for (float& x : v) {
        const int r = pick(rng);
        x = kind == 0   ? normal(rng)
            : kind == 1 ? std::round(normal(rng) * 4.0f) / 4.0f  // ties
            : kind == 2 ? (r < 10 ? -kInf : r < 20 ? 0.0f : r < 30 ? -0.0f : r < 31 ? kInf : normal(rng))
                        : std::ldexp(normal(rng), pick(rng) * 3 - 160);  // subnormal to 2^137
      }
      const std::vector<int32_t> want = comparator_order(v);
      EXPECT_EQ(rank_order(v, static_cast<int64_t>(n)), want);
      const int64_t k = static_cast<int64_t>(std::min<size_t>(n, 50));
      EXPECT_EQ(rank_order(v, k), std::vector<int32_t>(want.begin(), want.begin() + k));
    }
  }
}

TEST(RankOrder, ZerosTieNanRanksFirstAndEmptyRows) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(rank_order(std::vector<float>{-0.0f, 0.0f, -0.0f}, 3), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(rank_order(std::vector<float>{1.0f, nan, kInf, -nan}, 4), (std::vector<int32_t>{1, 3, 2, 0}));
  EXPECT_TRUE(rank_order(std::vector<float>{}, 0).empty());
  EXPECT_TRUE(rank_order(std::vector<float>{3.0f}, 0).empty());
  EXPECT_THROW(rank_order(std::vector<float>{3.0f}, 2), Error);
}

}  // namespace
}  // namespace mlaserve::ops
