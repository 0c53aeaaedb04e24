// Greedy and seeded sampling (temperature, top-k, top-p, min-p) and log-softmax.
#include "ops/sampling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "op_test_util.h"
#include "ops/sampling_split.h"

namespace mlaserve::ops {
namespace {

using testing::random_tensor;

Tensor logits_of_probs(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return Tensor::from_floats(l, {1, static_cast<int64_t>(probs.size())}, DType::kF32);
}

int32_t sample_one(const Tensor& logits, const SamplingOptions& options, SamplingKey key) {
  Tensor ids = testing::poisoned({1}, DType::kI32);
  sample_cpu(logits, {&options, 1}, {&key, 1}, ids);
  return ids.data<int32_t>()[0];
}

// The set of tokens drawn over many counters of one seed.
std::set<int32_t> drawn(const Tensor& logits, const SamplingOptions& options, int draws = 400) {
  std::set<int32_t> seen;
  for (int i = 0; i < draws; ++i) seen.insert(sample_one(logits, options, {7, static_cast<uint64_t>(i)}));
  return seen;
}

TEST(Sampling, GreedyTiesGoToLowestId) {
  Tensor logits = Tensor::from_floats({0, 5, 5, 1, /**/ -1, -1, -1, -1, /**/ 2, 3, 9, 9}, {3, 4}, DType::kF32);
  Tensor ids = testing::poisoned({3}, DType::kI32);
  greedy_sample_cpu(logits, ids);
  EXPECT_EQ(ids.to_vector(), std::vector<float>({1, 0, 2}));
}

TEST(Sampling, TopK1AndZeroTemperatureAreGreedy) {
  std::mt19937_64 rng(70);
  Tensor logits = random_tensor({16, 1000}, DType::kF32, rng, 3.0f);
  logits.data<float>()[5 * 1000 + 10] = logits.data<float>()[5 * 1000 + 900] = 100.0f;  // a tie in row 5
  Tensor greedy = Tensor::empty({16}, DType::kI32);
  greedy_sample_cpu(logits, greedy);
  EXPECT_EQ(greedy.data<int32_t>()[5], 10);
  SamplingOptions top1;
  top1.top_k = 1;
  SamplingOptions cold;
  cold.temperature = 0.0f;
  for (const SamplingOptions& o : {top1, cold}) {
    std::vector<SamplingOptions> options(16, o);
    std::vector<SamplingKey> keys;
    for (uint64_t i = 0; i < 16; ++i) keys.push_back({i, i * 3});
    Tensor ids = testing::poisoned({16}, DType::kI32);
    sample_cpu(logits, options, keys, ids);
    EXPECT_EQ(ids.to_vector(), greedy.to_vector());
  }
}

TEST(Sampling, FiltersExcludeWhatTheyMust) {
  Tensor logits = logits_of_probs({0.5, 0.3, 0.15, 0.05});
  SamplingOptions plain;
  EXPECT_EQ(drawn(logits, plain), (std::set<int32_t>{0, 1, 2, 3}));
  SamplingOptions top_k;
  top_k.top_k = 2;
  EXPECT_EQ(drawn(logits, top_k), (std::set<int32_t>{0, 1}));
  SamplingOptions top_p;
  top_p.top_p = 0.75f;  // 0.5 < 0.75 <= 0.8: tokens 0 and 1
  EXPECT_EQ(drawn(logits, top_p), (std::set<int32_t>{0, 1}));
  top_p.top_p = 0.45f;  // the first token alone reaches it
  EXPECT_EQ(drawn(logits, top_p), (std::set<int32_t>{0}));
  SamplingOptions min_p;
  min_p.min_p = 0.35f;  // threshold 0.175: 0.15 and 0.05 go
  EXPECT_EQ(drawn(logits, min_p), (std::set<int32_t>{0, 1}));
  SamplingOptions combined;  // top-k 3 renormalises to (0.526, 0.316, 0.158); top-p 0.8 keeps 2
  combined.top_k = 3;
  combined.top_p = 0.8f;
  EXPECT_EQ(drawn(logits, combined), (std::set<int32_t>{0, 1}));
}

TEST(Sampling, MaskedTokensAreNeverDrawn) {
  Tensor logits = Tensor::from_floats({-std::numeric_limits<float>::infinity(), 0.0f, 0.0f,
                                       -std::numeric_limits<float>::infinity()},
                                      {1, 4}, DType::kF32);
  EXPECT_EQ(drawn(logits, {}), (std::set<int32_t>{1, 2}));
  Tensor all_masked = Tensor::from_floats({-std::numeric_limits<float>::infinity()}, {1, 1}, DType::kF32);
  EXPECT_EQ(sample_one(all_masked, {}, {}), -1);
}

TEST(Sampling, FrequenciesFollowTheTemperedDistribution) {
  // p ∝ probs^(1/T) with T = 2; 20000 draws: each frequency's standard deviation is <= 0.0035,
  // so 0.015 is a > 4 sigma band.
  const std::vector<double> probs = {0.5, 0.3, 0.15, 0.05};
  Tensor logits = logits_of_probs(probs);
  SamplingOptions warm;
  warm.temperature = 2.0f;
  std::vector<double> tempered, count(4, 0.0);
  double z = 0.0;
  for (double p : probs) z += std::sqrt(p);
  for (double p : probs) tempered.push_back(std::sqrt(p) / z);
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) count[sample_one(logits, warm, {123, static_cast<uint64_t>(i)})] += 1.0;
  for (int v = 0; v < 4; ++v) EXPECT_NEAR(count[v] / draws, tempered[v], 0.015) << "token " << v;
}

TEST(Sampling, SameSeedSameTokensWhateverTheBatch) {
  std::mt19937_64 rng(71);
  Tensor logits = random_tensor({3, 500}, DType::kF32, rng, 2.0f);
  SamplingOptions o;
  o.top_p = 0.9f;
  const std::vector<SamplingOptions> options(3, o);
  const std::vector<SamplingKey> keys = {{1, 0}, {2, 0}, {1, 5}};
  Tensor batch = Tensor::empty({3}, DType::kI32), again = Tensor::empty({3}, DType::kI32);
  sample_cpu(logits, options, keys, batch);
  sample_cpu(logits, options, keys, again);
  EXPECT_EQ(batch.to_vector(), again.to_vector());
  for (int64_t b = 0; b < 3; ++b) {  // each row alone gives the same token as in the batch
    EXPECT_EQ(sample_one(logits.slice(b, b + 1), o, keys[b]), batch.data<int32_t>()[b]);
  }
  // Different seeds give different streams.
  int differ = 0;
  for (uint64_t i = 0; i < 50; ++i) {
    differ += sample_one(logits.slice(0, 1), o, {1, i}) != sample_one(logits.slice(0, 1), o, {2, i}) ? 1 : 0;
  }
  EXPECT_GT(differ, 10);
}

TEST(Sampling, UniformIsInUnitIntervalAndSpread) {
  double sum = 0.0;
  for (uint64_t i = 0; i < 10000; ++i) {
    const double u = sampling_uniform({42, i});
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.012);  // 4 sigma of a mean of 10000 uniforms
  EXPECT_NE(sampling_uniform({1, 0}), sampling_uniform({0, 1}));
}

TEST(Sampling, RejectsInvalidOptions) {
  Tensor logits = Tensor::zeros({1, 4}, DType::kF32);
  SamplingOptions o;
  o.top_p = 0.0f;
  EXPECT_THROW(sample_one(logits, o, {}), Error);
  o = {};
  o.min_p = 1.5f;
  EXPECT_THROW(sample_one(logits, o, {}), Error);
  Tensor ids = Tensor::empty({1}, DType::kI32);
  EXPECT_THROW(sample_cpu(logits, {}, {}, ids), Error);  // one options entry per row
}

TEST(LogSoftmax, MatchesNaive) {
  std::mt19937_64 rng(72);
  Tensor logits = random_tensor({4, 3000}, DType::kF32, rng, 5.0f);
  Tensor out = testing::poisoned({4, 3000}, DType::kF32);
  log_softmax_cpu(logits, out);
  testing::expect_all_written(out);
  const auto l = testing::to_doubles(logits);
  for (int64_t b = 0; b < 4; ++b) {
    double m = -INFINITY, z = 0.0;
    for (int64_t v = 0; v < 3000; ++v) m = std::max(m, l[b * 3000 + v]);
    for (int64_t v = 0; v < 3000; ++v) z += std::exp(l[b * 3000 + v] - m);
    for (int64_t v = 0; v < 3000; ++v) {
      // The log-normaliser is accurate to ~1 ulp of ~20; the subtraction adds one rounding.
      ASSERT_NEAR(out.data<float>()[b * 3000 + v], l[b * 3000 + v] - m - std::log(z), 1e-5);
    }
  }
}

// The GPU sampler's slices of a row (ops/sampling_split.h): in rank order they cover the row
// exactly once, each starts on a 4-token step (16-byte aligned where the row is), and none is
// longer than a share of whole steps: for every cluster size and vocabularies from 1 token to
// DeepSeek's.
TEST(SamplingSplit, SlicesCoverTheRowInOrderOnFourTokenSteps) {
  std::vector<int32_t> vocabs;
  for (int32_t v = 1; v <= 300; ++v) vocabs.push_back(v);
  for (int32_t v : {1021, 4096, 32000, 102400, 129280, 129281, 129283}) vocabs.push_back(v);
  for (int ctas : {1, 2, 4, 8}) {
    for (int32_t v : vocabs) {
      SCOPED_TRACE(::testing::Message() << "v " << v << ", " << ctas << " CTAs");
      int32_t next = 0;
      for (int rank = 0; rank < ctas; ++rank) {
        const VocabSlice s = vocab_slice(v, rank, ctas);
        ASSERT_EQ(s.begin, next);
        ASSERT_LE(s.begin, s.end);
        EXPECT_TRUE(s.begin % 4 == 0 || s.begin == v);
        EXPECT_LE(s.end - s.begin, 4 * ((v + 4 * ctas - 1) / (4 * ctas)) + 4);
        next = s.end;
      }
      EXPECT_EQ(next, v);
    }
  }
}

// A row a CTA from about a row an SM; the fewer the rows, the larger the cluster, at most 8.
TEST(SamplingSplit, CtasPerRowFillTheSmsUpToEight) {
  constexpr int kSms = 132;
  EXPECT_EQ(ctas_per_row(1, kSms), 8);
  EXPECT_EQ(ctas_per_row(16, kSms), 8);
  EXPECT_EQ(ctas_per_row(17, kSms), 4);
  EXPECT_EQ(ctas_per_row(33, kSms), 4);
  EXPECT_EQ(ctas_per_row(34, kSms), 2);
  EXPECT_EQ(ctas_per_row(66, kSms), 2);
  EXPECT_EQ(ctas_per_row(67, kSms), 1);
  EXPECT_EQ(ctas_per_row(4096, kSms), 1);
  EXPECT_EQ(ctas_per_row(0, kSms), 8);  // no rows: nothing launched, any answer is safe
  for (int64_t rows = 1; rows <= 300; ++rows) {
    const int c = ctas_per_row(rows, kSms);
    EXPECT_TRUE(c == 1 || rows * c <= kSms) << rows << " rows: " << c << " CTAs each, more than the SMs";
  }
}

}  // namespace
}  // namespace mlaserve::ops
