// greedy_sample_cuda, sample_cuda and log_softmax_cuda against the CPU references on logits of
// DeepSeek's vocabularies (V3 129280, V2 102400): decode batches of 1 to 256 rows, coarse logits
// with many tied maxima, fully masked (-inf) rows. Outputs are poisoned first.
//
// sample_cuda: every row must get sample_cpu's token, except where a decision of sample_cpu lies
// within kBoundary (relative) of its boundary: the GPU sums the same double p's in another order
// and its exp may differ by an ulp (~1e-16 relative each; sums over 1e5 tokens ~1e-13), so such
// rows may go either way. The test recomputes sample_cpu's decisions with their distance to the
// boundary (Decision below, checked to give sample_cpu's token), excuses a disagreement only when
// that distance is below kBoundary, and fails when more than a few rows need excusing. A
// chi-square test compares many seeded draws of one row with its probabilities.
//
// Greedy is exact: the same token as greedy_sample_cpu (first maximum). log_softmax: the GPU
// does the CPU's operations (fp32 max, double Σ exp and log, one fp32 rounding of the
// normaliser, one fp32 subtraction) with the sum in another order, so the normaliser can differ
// by an fp32 ulp (2e-6 at ~30) and each output by that plus one rounding: 1e-5 absolute, as the
// CPU test allows against a double reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <span>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/sampling.h"

namespace mlaserve::ops {
namespace {

using testing::count_nan;
using testing::CudaOpTest;
using testing::poisoned_gpu;

// [b, v] logits, normal with `scale`; grid > 0 rounds them to multiples of 1/grid (ties); row
// `masked` (if in range) is all -inf.
Tensor make_logits(int64_t b, int64_t v, float scale, float grid, int64_t masked, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  Tensor logits = Tensor::empty({b, v}, DType::kF32);
  float* p = logits.data<float>();
  for (int64_t i = 0; i < b * v; ++i) {
    const float x = normal(rng);
    p[i] = i / v == masked ? -INFINITY : grid > 0.0f ? std::round(x * grid) / grid : x;
  }
  return logits;
}

constexpr double kBoundary = 1e-11;

// sample_cpu's algorithm (ops/sampling.h) for one row, with how close each decision came to its
// boundary: the relative distance of top_p · mass, of min_p, and of u · mass from the cumulative
// masses (or probabilities) on either side of the chosen rank.
struct Decision {
  int32_t token = -1;
  double margin = INFINITY;  // the smallest relative distance to a boundary
  std::vector<int32_t> kept;  // the kept tokens in rank order
  std::vector<double> prob;   // their probabilities (renormalised)
};

Decision decide(std::span<const float> logits, const SamplingOptions& o, const SamplingKey& key) {
  const auto v = static_cast<int64_t>(logits.size());
  Decision d;
  if (o.temperature <= 0.0f) {
    d.token = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    d.kept = {d.token}, d.prob = {1.0};
    return d;
  }
  std::vector<float> z(logits.begin(), logits.end());
  for (float& x : z) x /= o.temperature;
  std::vector<int32_t> order(static_cast<size_t>(v));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); });
  const float max_z = z[order[0]];
  const int64_t ranked = o.top_k > 0 ? std::min(o.top_k, v) : v;
  std::vector<double> p(static_cast<size_t>(ranked)), cum(static_cast<size_t>(ranked));
  double mass = 0.0;
  for (int64_t i = 0; i < ranked; ++i) {
    p[i] = std::exp(static_cast<double>(z[order[i]]) - max_z);
    cum[i] = mass += p[i];
  }
  // The relative distance of `target` from cum[i - 1] and cum[i] (the crossing at rank i).
  auto crossing_margin = [&](int64_t i, double target, double scale) {
    const double below = i > 0 ? cum[i - 1] : 0.0;
    return std::min(std::abs(cum[i] - target), std::abs(target - below)) / scale;
  };
  int64_t kept = ranked;
  if (o.top_p < 1.0f) {
    const double target = o.top_p * cum[ranked - 1];
    for (int64_t i = 0; i < kept; ++i) {
      if (cum[i] >= target) {
        d.margin = std::min(d.margin, crossing_margin(i, target, cum[ranked - 1]));
        kept = i + 1;
        break;
      }
    }
  }
  if (o.min_p > 0.0f) {
    for (int64_t i = 1; i < kept; ++i) d.margin = std::min(d.margin, std::abs(p[i] - o.min_p));
    for (int64_t i = 1; i < kept; ++i) {
      if (p[i] < o.min_p * p[0]) {
        kept = i;
        break;
      }
    }
  }
  const double threshold = sampling_uniform(key) * cum[kept - 1];
  d.token = order[kept - 1];
  for (int64_t i = 0; i < kept; ++i) {
    if (threshold < cum[i]) {
      d.margin = std::min(d.margin, crossing_margin(i, threshold, cum[kept - 1]));
      d.token = order[i];
      break;
    }
  }
  d.kept.assign(order.begin(), order.begin() + kept);
  for (int64_t i = 0; i < kept; ++i) d.prob.push_back(p[i] / cum[kept - 1]);
  return d;
}

// The option sets the batch tests cycle through: each filter alone, all together, edge values.
std::vector<SamplingOptions> option_mix(int64_t v) {
  auto o = [](float t, int64_t k, float top_p, float min_p) { return SamplingOptions{t, k, top_p, min_p}; };
  return {o(1.0f, 0, 1.0f, 0.0f),      o(0.7f, 50, 1.0f, 0.0f),    o(1.0f, 0, 0.9f, 0.0f),
          o(1.3f, 0, 1.0f, 0.05f),     o(0.8f, 40, 0.95f, 0.02f),  o(1.0f, 1, 1.0f, 0.0f),
          o(0.0f, 0, 1.0f, 0.0f),      o(2.0f, 0, 0.5f, 0.0f),     o(1.0f, 1000, 0.99f, 0.0f),
          o(1.0f, v - 1, 1.0f, 0.0f),  o(1.0f, v + 5, 1.0f, 0.0f), o(1.0f, 0, 1.0f, 1.0f),
          o(0.6f, 0, 1e-6f, 0.0f),     o(0.05f, 0, 0.9f, 0.0f),    o(1.0f, 20, 0.8f, 0.1f),
          o(1.5f, 0, 0.97f, 0.001f)};
}

class SamplingCuda : public CudaOpTest {
 protected:
  void check_greedy(const Tensor& logits) {
    const int64_t b = logits.dim(0);
    Tensor want = Tensor::empty({b}, DType::kI32);
    greedy_sample_cpu(logits, want);
    Tensor got = poisoned_gpu({b}, DType::kI32);
    greedy_sample_cuda(logits.to(Device::kCUDA), got, cuda_stream());
    const Tensor host = to_host(got);
    std::vector<int32_t> g(host.data<int32_t>(), host.data<int32_t>() + b);
    std::vector<int32_t> w(want.data<int32_t>(), want.data<int32_t>() + b);
    EXPECT_EQ(testing::mismatches(g, w), 0) << "of " << b << " rows";
  }

  void check_log_softmax(const Tensor& logits) {
    Tensor want = Tensor::empty(logits.shape(), DType::kF32);
    log_softmax_cpu(logits, want);
    Tensor got = poisoned_gpu(logits.shape(), DType::kF32);
    log_softmax_cuda(logits.to(Device::kCUDA), got, cuda_stream());
    const std::vector<float> g = to_host(got).to_vector(), w = want.to_vector();
    ASSERT_EQ(count_nan(g), 0) << "elements left unwritten";
    int64_t bad = 0;
    double worst = 0.0;
    for (size_t i = 0; i < g.size(); ++i) {
      const double err = std::abs(static_cast<double>(g[i]) - w[i]);
      worst = std::max(worst, err);
      bad += !(err <= 1e-5) ? 1 : 0;
    }
    testing::record_error("log_softmax_worst_abs_error", worst);
    EXPECT_EQ(bad, 0) << "of " << g.size() << " elements off by more than 1e-5";
  }

  // sample_cuda against sample_cpu on logits [b, V] with the option sets cycled over the rows
  // (offset `shift`) and keys from `seed`.
  void check_sample(const Tensor& logits, int shift, uint64_t seed) {
    const int64_t b = logits.dim(0), v = logits.dim(1);
    const std::vector<SamplingOptions> mix = option_mix(v);
    std::vector<SamplingOptions> options;
    std::vector<SamplingKey> keys;
    std::mt19937_64 rng(seed);
    for (int64_t i = 0; i < b; ++i) {
      options.push_back(mix[static_cast<size_t>(i + shift) % mix.size()]);
      keys.push_back({rng(), rng() % 4096});
    }
    Tensor want = Tensor::empty({b}, DType::kI32);
    sample_cpu(logits, options, keys, want);
    Tensor got = poisoned_gpu({b}, DType::kI32);
    sample(logits.to(Device::kCUDA), options, keys, got, stream());
    const Tensor host = to_host(got);
    int64_t excused = 0, wrong = 0;
    double closest = INFINITY;
    for (int64_t i = 0; i < b; ++i) {
      const Decision d = decide(std::span(logits.data<float>() + i * v, static_cast<size_t>(v)), options[i], keys[i]);
      ASSERT_EQ(d.token, want.data<int32_t>()[i]) << "the test's reference disagrees with sample_cpu on row " << i;
      closest = std::min(closest, d.margin);
      const int32_t g = host.data<int32_t>()[i];
      if (g == d.token) continue;
      if (d.margin < kBoundary && g >= 0 && g < v) {
        ++excused;
      } else {
        ++wrong;
        ADD_FAILURE() << "row " << i << " (temperature " << options[i].temperature << ", top_k " << options[i].top_k
                      << ", top_p " << options[i].top_p << ", min_p " << options[i].min_p << "): GPU token " << g
                      << ", CPU " << d.token << ", decision margin " << d.margin;
      }
    }
    testing::record_error("sample_closest_decision_margin", closest);
    std::printf("sample_cuda [%lld, %lld]: %lld excused at a boundary, closest decision %.2e from its boundary\n",
                static_cast<long long>(b), static_cast<long long>(v), static_cast<long long>(excused), closest);
    EXPECT_EQ(wrong, 0) << "of " << b << " rows";
    EXPECT_LE(excused, std::max<int64_t>(1, b / 100)) << "rows whose decision was within " << kBoundary
                                                      << " of a boundary: too many to be rounding";
  }
};

// Logit kinds for the sampling tests: a few spikes over a normal row (peaked), one value
// everywhere (flat), half the vocabulary masked.
Tensor peaked(int64_t b, int64_t v, uint64_t seed) {
  Tensor t = make_logits(b, v, 1.0f, 0.0f, -1, seed);
  std::mt19937_64 rng(seed + 1);
  for (int64_t r = 0; r < b; ++r) {
    for (int s = 0; s < 4; ++s) t.data<float>()[r * v + static_cast<int64_t>(rng() % v)] += 8.0f + 2.0f * s;
  }
  return t;
}
Tensor flat(int64_t b, int64_t v, float value) {
  return Tensor::from_floats(std::vector<float>(static_cast<size_t>(b * v), value), {b, v}, DType::kF32);
}
Tensor half_masked(int64_t b, int64_t v, uint64_t seed) {
  Tensor t = make_logits(b, v, 2.0f, 0.0f, -1, seed);
  for (int64_t i = 0; i < b * v; ++i) {
    if ((i % v) % 2 == 1) t.data<float>()[i] = -INFINITY;
  }
  return t;
}

TEST_F(SamplingCuda, SmallSampleEveryFilter) {
  for (int shift = 0; shift < 16; shift += 4) {
    check_sample(make_logits(16, 3000, 3.0f, 0.0f, -1, 31 + shift), shift, 1 + shift);
  }
  check_sample(make_logits(16, 3000, 1.0f, 2.0f, -1, 32), 3, 2);  // coarse: ties at every boundary
  check_sample(peaked(16, 3000, 33), 5, 3);
  check_sample(flat(16, 3000, 0.25f), 0, 4);
  check_sample(half_masked(16, 3000, 34), 7, 5);
  check_sample(make_logits(16, 1, 1.0f, 0.0f, -1, 35), 0, 6);  // V = 1
  check_sample(make_logits(16, 37, 1.0f, 0.0f, -1, 36), 1, 7);  // V below the CTA size
}

TEST_F(SamplingCuda, SmallSampleMaskedRowGivesMinusOne) {
  const Tensor logits = make_logits(3, 500, 1.0f, 0.0f, 1, 41);
  const std::vector<SamplingOptions> options(3);
  const std::vector<SamplingKey> keys(3);
  Tensor got = poisoned_gpu({3}, DType::kI32);
  Tensor logits_gpu = logits.to(Device::kCUDA);
  sample(logits_gpu, options, keys, got, stream());
  const Tensor host = to_host(got);
  EXPECT_EQ(host.data<int32_t>()[1], -1);
  EXPECT_GE(host.data<int32_t>()[0], 0);
  EXPECT_GE(host.data<int32_t>()[2], 0);
  SamplingOptions bad;
  bad.top_p = 0.0f;
  const std::vector<SamplingOptions> bad_options(3, bad);
  EXPECT_THROW(sample(logits_gpu, bad_options, keys, got, stream()), Error);
}

TEST_F(SamplingCuda, SampleV3Vocabulary) {
  check_sample(make_logits(1, 129280, 3.0f, 0.0f, -1, 51), 0, 11);
  check_sample(make_logits(64, 129280, 3.0f, 0.0f, -1, 52), 1, 12);
  check_sample(make_logits(256, 129280, 2.0f, 0.0f, -1, 53), 2, 13);
  check_sample(peaked(64, 129280, 54), 3, 14);
  check_sample(make_logits(32, 129280, 1.0f, 4.0f, -1, 55), 4, 15);  // ties
  check_sample(flat(16, 129280, -3.0f), 5, 16);
}

TEST_F(SamplingCuda, SampleV2Vocabulary) {
  check_sample(make_logits(128, 102400, 3.0f, 0.0f, -1, 61), 6, 21);
  check_sample(half_masked(32, 102400, 62), 7, 22);
}

// Many seeded draws of one row (counters 0..N-1): the frequency of each kept token against its
// probability, as a chi-square statistic over the tokens expected at least 5 times (the rest
// pooled), bounded at 6 standard deviations of its distribution (dof + 6·sqrt(2·dof)); no token
// outside the kept set may appear.
TEST_F(SamplingCuda, SampleFrequenciesMatchTheProbabilities) {
  constexpr int64_t kV = 2000, kRows = 4096, kLaunches = 16;
  const Tensor row = make_logits(1, kV, 2.0f, 0.0f, -1, 71);
  Tensor logits = Tensor::empty({kRows, kV}, DType::kF32);
  for (int64_t r = 0; r < kRows; ++r) std::copy_n(row.data<float>(), kV, logits.data<float>() + r * kV);
  const Tensor logits_gpu = logits.to(Device::kCUDA);
  for (const SamplingOptions& o : {SamplingOptions{1.0f, 0, 1.0f, 0.0f}, SamplingOptions{0.8f, 200, 0.9f, 0.01f}}) {
    const Decision d = decide(std::span(row.data<float>(), kV), o, SamplingKey{});
    std::vector<double> expected(kV, 0.0);
    for (size_t i = 0; i < d.kept.size(); ++i) expected[static_cast<size_t>(d.kept[i])] = d.prob[i];
    std::vector<int64_t> seen(kV, 0);
    const std::vector<SamplingOptions> options(kRows, o);
    for (int64_t l = 0; l < kLaunches; ++l) {
      std::vector<SamplingKey> keys;
      for (int64_t r = 0; r < kRows; ++r) keys.push_back({77, static_cast<uint64_t>(l * kRows + r)});
      Tensor got = poisoned_gpu({kRows}, DType::kI32);
      sample(logits_gpu, options, keys, got, stream());
      const Tensor host = to_host(got);
      for (int64_t r = 0; r < kRows; ++r) {
        const int32_t t = host.data<int32_t>()[r];
        ASSERT_TRUE(t >= 0 && t < kV && expected[static_cast<size_t>(t)] > 0.0) << "token " << t << " drawn";
        ++seen[static_cast<size_t>(t)];
      }
    }
    const double n = kRows * kLaunches;
    double chi2 = 0.0, pooled_expected = 0.0, pooled_seen = 0.0;
    int64_t cells = 0;
    for (int64_t t = 0; t < kV; ++t) {
      const double e = n * expected[static_cast<size_t>(t)];
      if (e >= 5.0) {
        chi2 += (seen[t] - e) * (seen[t] - e) / e;
        ++cells;
      } else {
        pooled_expected += e, pooled_seen += static_cast<double>(seen[t]);
      }
    }
    if (pooled_expected >= 5.0) {
      chi2 += (pooled_seen - pooled_expected) * (pooled_seen - pooled_expected) / pooled_expected;
      ++cells;
    }
    const double dof = static_cast<double>(cells - 1);
    testing::record_error("sample_chi2_over_dof", chi2 / dof);
    std::printf("sample_cuda draws: chi2 %.1f over %lld cells\n", chi2, static_cast<long long>(cells));
    EXPECT_GT(cells, 20) << "too few cells for the test to mean anything";
    EXPECT_LT(chi2, dof + 6.0 * std::sqrt(2.0 * dof)) << cells << " cells, top_k " << o.top_k;
  }
}

TEST_F(SamplingCuda, SmallGreedyTiesGoToLowestId) {
  check_greedy(Tensor::from_floats({0, 5, 5, 1, /**/ -1, -1, -1, -1, /**/ 2, 3, 9, 9}, {3, 4}, DType::kF32));
  check_greedy(make_logits(3, 1000, 1.0f, 1.0f, 1, 1));  // integer logits: ties at the max; row 1 all -inf
}

TEST_F(SamplingCuda, SmallLogSoftmax) { check_log_softmax(make_logits(3, 3000, 5.0f, 0.0f, -1, 2)); }

TEST_F(SamplingCuda, GreedyV3Vocabulary) {
  check_greedy(make_logits(1, 129280, 3.0f, 0.0f, -1, 11));
  check_greedy(make_logits(256, 129280, 3.0f, 0.0f, -1, 12));
  check_greedy(make_logits(64, 129280, 2.0f, 2.0f, 5, 13));
}

TEST_F(SamplingCuda, GreedyV2Vocabulary) { check_greedy(make_logits(100, 102400, 3.0f, 0.0f, -1, 14)); }

TEST_F(SamplingCuda, LogSoftmaxV3Vocabulary) { check_log_softmax(make_logits(16, 129280, 5.0f, 0.0f, -1, 21)); }

TEST_F(SamplingCuda, LogSoftmaxV2Vocabulary) { check_log_softmax(make_logits(8, 102400, 5.0f, 0.0f, -1, 22)); }

}  // namespace
}  // namespace mlaserve::ops
