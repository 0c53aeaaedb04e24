// RoPE: the YaRN table (MODEL_SPEC §10 item 2), the cos/sin table, the interleaved rotation, and
// the layout equivalence with HF-remote's permute + rotate-half (§10 item 3).
#include "ops/rope.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "op_test_util.h"

namespace mlaserve::ops {
namespace {

using testing::deepseek_yarn;
using testing::poisoned;
using testing::random_tensor;

TEST(Rope, YarnCorrectionRangeIs10To23) {
  const YarnCorrectionRange r = yarn_correction_range(deepseek_yarn());
  EXPECT_EQ(r.low, 10.0);
  EXPECT_EQ(r.high, 23.0);
}

TEST(Rope, YarnInvFreqMatchesSpecValues) {
  // MODEL_SPEC §3.5's fp64 reference values. They are printed to 6 significant digits, so they
  // pin the table to half a unit of the 6th digit (up to 1.5e-6 relative: 3.33380e-5 stands for
  // 3.3338036e-5); §10 item 2's 1e-6 relative check is against full-precision values in
  // InvFreqMatchesIndependentFormula below.
  const std::vector<float> f = rope_inv_freq(deepseek_yarn());
  ASSERT_EQ(f.size(), 32u);
  const std::vector<std::pair<int, double>> spec = {{0, 1.0},         {1, 0.749894},     {10, 0.0562341},
                                                    {11, 0.0390069},  {16, 0.0055},      {22, 1.77828e-4},
                                                    {23, 3.33380e-5}, {31, 3.33380e-6}};
  for (auto [i, want] : spec) {
    const double last_digit = std::pow(10.0, std::floor(std::log10(want)) - 5.0);
    EXPECT_NEAR(f[i], want, 0.5 * last_digit) << "inv_freq[" << i << "]";
  }
}

TEST(Rope, InvFreqMatchesIndependentFormula) {
  // HF-remote's form: mask = 1 - ramp, inv = f_inter · (1 - mask) + f_extra · mask, in double.
  for (bool yarn : {false, true}) {
    RopeParams p = deepseek_yarn();
    p.yarn = yarn;
    const std::vector<float> f = rope_inv_freq(p);
    for (int i = 0; i < 32; ++i) {
      const double extra = 1.0 / std::pow(10000.0, 2.0 * i / 64.0);
      double want = extra;
      if (yarn) {
        const double mask = 1.0 - std::clamp((i - 10.0) / 13.0, 0.0, 1.0);
        want = extra / 40.0 * (1.0 - mask) + extra * mask;
      }
      // One rounding to f32 (2^-24 relative): far inside §10 item 2's 1e-6.
      EXPECT_NEAR(f[i] / want, 1.0, 1.2e-7) << "yarn " << yarn << " i " << i;
    }
  }
}

TEST(Rope, CosSinTableFoldsMagnitude) {
  RopeParams p = deepseek_yarn();
  p.mscale = 1.0;
  p.mscale_all_dim = 0.707;  // a custom config where the cos/sin factor is not 1
  const double mc = (0.1 * std::log(40.0) + 1.0) / (0.1 * 0.707 * std::log(40.0) + 1.0);
  const int64_t positions = 5000;
  Tensor table = poisoned({positions, 64}, DType::kF32);
  build_rope_cos_sin_cpu(p, table);
  const std::vector<float> f = rope_inv_freq(p);
  const float* t = table.data<float>();
  for (int64_t pos : {0L, 1L, 77L, 4095L, 4999L}) {
    for (int i = 0; i < 32; ++i) {
      // θ is an fp32 product by contract; cos/sin and mc of it are then accurate to ~1 ulp.
      const double theta = static_cast<float>(pos) * f[i];
      EXPECT_NEAR(t[pos * 64 + i], mc * std::cos(theta), 1e-6) << pos << " " << i;
      EXPECT_NEAR(t[pos * 64 + 32 + i], mc * std::sin(theta), 1e-6) << pos << " " << i;
    }
  }
}

// Rotates the rope channels of x [T, heads, row] at `offset` with the naive formula in double.
std::vector<double> naive_interleaved(const Tensor& x, const std::vector<int32_t>& pos, const Tensor& table,
                                      int64_t offset) {
  std::vector<double> v = testing::to_doubles(x);
  const int64_t heads = x.dim(1), row = x.dim(2);
  const float* cs = table.data<float>();
  for (int64_t t = 0; t < x.dim(0); ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      double* r = &v[(t * heads + h) * row + offset];
      for (int i = 0; i < 32; ++i) {
        const double c = cs[pos[t] * 64 + i], s = cs[pos[t] * 64 + 32 + i];
        const double a = r[2 * i], b = r[2 * i + 1];
        r[2 * i] = a * c - b * s;
        r[2 * i + 1] = a * s + b * c;
      }
    }
  }
  return v;
}

TEST(Rope, InterleavedRotatesOnlyTheRopeChannelsOfQ) {
  std::mt19937_64 rng(20);
  Tensor table = Tensor::empty({4096, 64}, DType::kF32);
  build_rope_cos_sin_cpu(deepseek_yarn(), table);
  // q [T, n, 192]: rope in channels 128..191; positions as i32 and as i64.
  Tensor q = random_tensor({5, 3, 192}, DType::kF32, rng);
  const std::vector<int32_t> pos = {0, 1, 63, 1000, 4095};
  const std::vector<double> want = naive_interleaved(q, pos, table, 128);
  Tensor q32 = q.clone(), q64 = q.clone();
  apply_rope_interleaved_cpu(q32, testing::i32_tensor(pos, {5}), table, 128);
  Tensor pos64 = Tensor::empty({5}, DType::kI64);
  for (int i = 0; i < 5; ++i) pos64.data<int64_t>()[i] = pos[i];
  apply_rope_interleaved_cpu(q64, pos64, table, 128);
  EXPECT_EQ(q32.to_vector(), q64.to_vector());
  const std::vector<float> got = q32.to_vector(), orig = q.to_vector();
  for (size_t i = 0; i < got.size(); ++i) {
    if (i % 192 < 128) {
      ASSERT_EQ(got[i], orig[i]) << "nope channel " << i << " changed";
    } else {
      // Two products and a sum of fp32 values of magnitude ~1: a few ulps.
      ASSERT_NEAR(got[i], want[i], 1e-6) << i;
    }
  }
  // Position 0 is the identity.
  for (int64_t i = 0; i < 3 * 192; ++i) ASSERT_EQ(got[i], orig[i]);
}

TEST(Rope, RejectsBadOffsetsAndPositions) {
  Tensor table = Tensor::empty({16, 64}, DType::kF32);
  build_rope_cos_sin_cpu(deepseek_yarn(), table);
  Tensor x = Tensor::zeros({1, 2, 192}, DType::kF32);
  EXPECT_THROW(apply_rope_interleaved_cpu(x, testing::i32_tensor({0}, {1}), table, 129), Error);
  EXPECT_THROW(apply_rope_interleaved_cpu(x, testing::i32_tensor({16}, {1}), table, 128), Error);
  Tensor k_pe = Tensor::zeros({1, 64}, DType::kF32);  // [T, row] form
  apply_rope_interleaved_cpu(k_pe, testing::i32_tensor({15}, {1}), table, 0);
}

// HF-remote's path, naive in double: permute to [evens | odds], then rotate-half with
// cos/sin = cat(freqs, freqs): out[i] = x[i]·cos − x[i+32]·sin, out[i+32] = x[i+32]·cos + x[i]·sin.
std::vector<double> rotate_half(const std::vector<double>& x, int32_t pos, const std::vector<float>& inv_freq) {
  std::vector<double> out(64);
  for (int i = 0; i < 32; ++i) {
    const double theta = static_cast<float>(pos) * inv_freq[i];
    out[i] = x[i] * std::cos(theta) - x[i + 32] * std::sin(theta);
    out[i + 32] = x[i + 32] * std::cos(theta) + x[i] * std::sin(theta);
  }
  return out;
}

std::vector<double> evens_then_odds(const std::vector<double>& x) {
  std::vector<double> out(64);
  for (int i = 0; i < 32; ++i) {
    out[i] = x[2 * i];
    out[32 + i] = x[2 * i + 1];
  }
  return out;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

TEST(Rope, InterleavedEqualsRotateHalfOnPermutedChannelsOnly) {
  std::mt19937_64 rng(21);
  const RopeParams params = deepseek_yarn();
  const std::vector<float> inv_freq = rope_inv_freq(params);
  Tensor table = Tensor::empty({2048, 64}, DType::kF32);
  build_rope_cos_sin_cpu(params, table);
  for (auto [pq, pk] : {std::pair{1000, 37}, {5, 4}, {2047, 0}}) {
    Tensor q = random_tensor({1, 64}, DType::kF32, rng), k = random_tensor({1, 64}, DType::kF32, rng);
    const std::vector<double> q_raw = testing::to_doubles(q), k_raw = testing::to_doubles(k);
    apply_rope_interleaved_cpu(q, testing::i32_tensor({pq}, {1}), table, 0);
    apply_rope_interleaved_cpu(k, testing::i32_tensor({pk}, {1}), table, 0);
    const std::vector<double> q_rot = testing::to_doubles(q), k_rot = testing::to_doubles(k);

    // Same rotation, output in de-interleaved order: elementwise equal after the permutation.
    const std::vector<double> q_half = rotate_half(evens_then_odds(q_raw), pq, inv_freq);
    const std::vector<double> k_half = rotate_half(evens_then_odds(k_raw), pk, inv_freq);
    const std::vector<double> q_rot_perm = evens_then_odds(q_rot);
    for (int i = 0; i < 64; ++i) ASSERT_NEAR(q_rot_perm[i], q_half[i], 1e-5) << i;

    // So the attention logits agree (fp32 vs double rounding on a 64-term dot of ~8).
    const double interleaved = dot(q_rot, k_rot), permuted = dot(q_half, k_half);
    EXPECT_NEAR(interleaved, permuted, 1e-4);
    // Rotate-half on the raw channels (NeoX on unpermuted weights) is a different function.
    const double neox_raw = dot(rotate_half(q_raw, pq, inv_freq), rotate_half(k_raw, pk, inv_freq));
    EXPECT_GT(std::abs(neox_raw - interleaved), 0.1) << pq << " " << pk;
  }
}

}  // namespace
}  // namespace mlaserve::ops
