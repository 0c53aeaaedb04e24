// embedding, rms_norm, add_rms_norm, linear, silu_mul against double-precision naive forms;
// gather_fp8_rows as a byte copy.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "op_test_util.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/rms_norm.h"
#include "ops/silu_mul.h"

namespace mlaserve::ops {
namespace {

using testing::expect_all_written;
using testing::i32_tensor;
using testing::max_rel_error;
using testing::poisoned;
using testing::random_tensor;
using testing::to_doubles;

class FloatWeights : public ::testing::TestWithParam<DType> {};
INSTANTIATE_TEST_SUITE_P(Dtypes, FloatWeights, ::testing::Values(DType::kF32, DType::kBF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST_P(FloatWeights, EmbeddingGathersRowsExactly) {
  std::mt19937_64 rng(10);
  Tensor table = random_tensor({50, 33}, GetParam(), rng);
  Tensor ids = i32_tensor({3, 0, 49, 3, 17}, {5});
  Tensor out = poisoned({5, 33}, DType::kF32);
  embedding_cpu(ids, table, out);
  const auto t = to_doubles(table), o = to_doubles(out);
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0; i < 5; ++i) {
    for (int64_t c = 0; c < 33; ++c) ASSERT_EQ(o[i * 33 + c], t[id[i] * 33 + c]);  // a copy: bitwise
  }
}

TEST(Embedding, RejectsOutOfRangeIds) {
  Tensor table = Tensor::zeros({8, 4}, DType::kBF16);
  Tensor out = Tensor::empty({1, 4}, DType::kF32);
  EXPECT_THROW(embedding_cpu(i32_tensor({8}, {1}), table, out), Error);
  EXPECT_THROW(embedding_cpu(i32_tensor({-1}, {1}), table, out), Error);
  Tensor ids64 = Tensor::empty({1}, DType::kI64);
  ids64.data<int64_t>()[0] = 7;
  embedding_cpu(ids64, table, out);
  EXPECT_EQ(out.to_vector(), std::vector<float>(4, 0.0f));
}

// The quantised rows' gather: codes and scales of each id's row, byte for byte (the K of 130
// leaves a partial last 128-channel group); an id outside the rows is an error.
TEST(Embedding, GatherFp8RowsCopiesCodesAndScales) {
  constexpr int64_t kT = 5, kK = 130, kG = 2;
  Tensor x_q = Tensor::empty({kT, kK}, DType::kF8E4M3);
  auto* codes = static_cast<uint8_t*>(x_q.raw());
  for (int64_t i = 0; i < kT * kK; ++i) codes[i] = static_cast<uint8_t>(i * 37 + 11);
  std::mt19937_64 rng(11);
  const Tensor x_scales = random_tensor({kT, kG}, DType::kF32, rng);
  const Tensor ids = i32_tensor({4, 0, 4, 2}, {4});
  Tensor out_q = Tensor::empty({4, kK}, DType::kF8E4M3);
  Tensor out_scales = poisoned({4, kG}, DType::kF32);
  gather_fp8_rows_cpu(ids, x_q, x_scales, out_q, out_scales);
  const auto* got = static_cast<const uint8_t*>(out_q.raw());
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t c = 0; c < kK; ++c) ASSERT_EQ(got[i * kK + c], codes[id[i] * kK + c]) << i << ", " << c;
    for (int64_t g = 0; g < kG; ++g) {
      ASSERT_EQ(out_scales.data<float>()[i * kG + g], x_scales.data<float>()[id[i] * kG + g]);
    }
  }
  Tensor one_q = Tensor::empty({1, kK}, DType::kF8E4M3), one_scales = Tensor::empty({1, kG}, DType::kF32);
  EXPECT_THROW(gather_fp8_rows_cpu(i32_tensor({kT}, {1}), x_q, x_scales, one_q, one_scales), Error);
  EXPECT_THROW(gather_fp8_rows_cpu(i32_tensor({-1}, {1}), x_q, x_scales, one_q, one_scales), Error);
}

std::vector<double> naive_rms_norm(const std::vector<double>& x, const std::vector<double>& w, double eps) {
  const size_t d = w.size();
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / d; ++r) {
    double ms = 0.0;
    for (size_t j = 0; j < d; ++j) ms += x[r * d + j] * x[r * d + j];
    const double inv = 1.0 / std::sqrt(ms / static_cast<double>(d) + eps);
    for (size_t j = 0; j < d; ++j) y[r * d + j] = w[j] * x[r * d + j] * inv;
  }
  return y;
}

// fp32 RMSNorm: a sum of d squares (relative error ~d·2^-24 worst case, ~sqrt(d)·6e-8 typical)
// plus a few roundings per element; 1e-5 of the row scale is far above that and far below any
// real bug (a wrong eps placement or weight index changes values by >1e-3).
constexpr double kNormTolerance = 1e-5;

TEST_P(FloatWeights, RmsNormMatchesNaive) {
  std::mt19937_64 rng(11);
  const float eps = 1e-6f;
  Tensor x = random_tensor({7, 3, 512}, DType::kF32, rng, 3.0f);  // any leading dims
  Tensor w = random_tensor({512}, GetParam(), rng);
  Tensor out = poisoned({7, 3, 512}, DType::kF32);
  rms_norm_cpu(x, w, eps, out);
  expect_all_written(out);
  EXPECT_LT(max_rel_error(out, naive_rms_norm(to_doubles(x), to_doubles(w), eps)), kNormTolerance);

  Tensor in_place = x.clone();
  rms_norm_cpu(in_place, w, eps, in_place);
  EXPECT_EQ(in_place.to_vector(), out.to_vector());
}

TEST(RmsNorm, EpsMattersForTinyRows) {
  // mean(x²) = 1e-8 << eps = 1e-6: the output is x · w / sqrt(1.01e-6), not x · w / 1e-4.
  Tensor x = Tensor::from_floats({1e-4f, -1e-4f}, {1, 2}, DType::kF32);
  Tensor w = Tensor::from_floats({1.0f, 2.0f}, {2}, DType::kF32);
  Tensor out = Tensor::empty({1, 2}, DType::kF32);
  rms_norm_cpu(x, w, 1e-6f, out);
  const double inv = 1.0 / std::sqrt(1e-8 + 1e-6);
  EXPECT_NEAR(out.to_vector()[0], 1e-4 * inv, 1e-6);
  EXPECT_NEAR(out.to_vector()[1], -2e-4 * inv, 1e-6);
}

TEST_P(FloatWeights, AddRmsNormUpdatesResidualThenNormalises) {
  std::mt19937_64 rng(12);
  Tensor x = random_tensor({9, 256}, DType::kF32, rng);
  Tensor residual = random_tensor({9, 256}, DType::kF32, rng);
  Tensor w = random_tensor({256}, GetParam(), rng);
  std::vector<double> sum = to_doubles(residual);
  const auto xd = to_doubles(x);
  for (size_t i = 0; i < sum.size(); ++i) sum[i] += xd[i];
  Tensor out = poisoned({9, 256}, DType::kF32);
  add_rms_norm_cpu(x, residual, w, 1e-6f, out);
  expect_all_written(out);
  // residual is the fp32 sum: one rounding per element.
  EXPECT_LT(max_rel_error(residual, sum), 1e-7);
  EXPECT_LT(max_rel_error(out, naive_rms_norm(sum, to_doubles(w), 1e-6)), kNormTolerance);
}

TEST_P(FloatWeights, AddSumRmsNormAddsBothParts) {
  std::mt19937_64 rng(14);
  Tensor base = random_tensor({9, 256}, DType::kF32, rng);
  Tensor rest = random_tensor({9, 256}, DType::kF32, rng);
  Tensor residual = random_tensor({9, 256}, DType::kF32, rng);
  Tensor w = random_tensor({256}, GetParam(), rng);
  std::vector<double> sum = to_doubles(residual);
  const auto bd = to_doubles(base), rd = to_doubles(rest);
  for (size_t i = 0; i < sum.size(); ++i) sum[i] += bd[i] + rd[i];
  Tensor out = poisoned({9, 256}, DType::kF32);
  add_sum_rms_norm_cpu(base, rest, residual, w, 1e-6f, out);
  expect_all_written(out);
  // residual + (base + rest) in fp32: two roundings of terms below the largest value.
  EXPECT_LT(max_rel_error(residual, sum), 5e-7);
  EXPECT_LT(max_rel_error(out, naive_rms_norm(sum, to_doubles(w), 1e-6)), kNormTolerance);
  Tensor short_rest = Tensor::zeros({8, 256}, DType::kF32);
  EXPECT_THROW(add_sum_rms_norm_cpu(base, short_rest, residual, w, 1e-6f, out), Error);
}

TEST(RmsNorm, RejectsMismatchedShapes) {
  Tensor x = Tensor::zeros({2, 8}, DType::kF32), out = Tensor::empty({2, 8}, DType::kF32);
  EXPECT_THROW(rms_norm_cpu(x, Tensor::zeros({7}, DType::kF32), 1e-6f, out), Error);
  Tensor bad_out = Tensor::empty({2, 8}, DType::kBF16);
  EXPECT_THROW(rms_norm_cpu(x, Tensor::zeros({8}, DType::kF32), 1e-6f, bad_out), Error);
}

TEST_P(FloatWeights, LinearMatchesNaive) {
  std::mt19937_64 rng(13);
  // N = 37 is not a multiple of the 16-row tile, K = 300 not a multiple of the 16 lanes.
  for (auto [t, k, n] : {std::tuple<int64_t, int64_t, int64_t>{5, 300, 37}, {64, 128, 576}, {1, 7, 3}}) {
    Tensor x = random_tensor({t, k}, DType::kF32, rng);
    Tensor w = random_tensor({n, k}, GetParam(), rng, 0.05f);
    Tensor out = poisoned({t, n}, DType::kF32);
    linear_cpu(x, w, out);
    expect_all_written(out);
    const auto xd = to_doubles(x), wd = to_doubles(w);
    std::vector<double> want(static_cast<size_t>(t * n), 0.0);
    for (int64_t i = 0; i < t; ++i) {
      for (int64_t o = 0; o < n; ++o) {
        for (int64_t c = 0; c < k; ++c) want[i * n + o] += xd[i * k + c] * wd[o * k + c];
      }
    }
    // fp32 dot of K random terms: error ~sqrt(K)·2^-24 of the terms' scale, while a typical
    // output is sqrt(K) terms' scale; relative to the largest output 1e-5 is ample headroom.
    EXPECT_LT(max_rel_error(out, want), 1e-5) << t << "x" << k << "x" << n;
  }
}

TEST(Linear, RejectsMismatchedShapes) {
  Tensor x = Tensor::zeros({2, 8}, DType::kF32), w = Tensor::zeros({4, 9}, DType::kBF16);
  Tensor out = Tensor::empty({2, 4}, DType::kF32);
  EXPECT_THROW(linear_cpu(x, w, out), Error);
  EXPECT_THROW(linear_cpu(x, Tensor::zeros({4, 8}, DType::kF8E4M3), out), Error);
}

TEST(SiluMul, FusedAndSeparateMatchNaive) {
  std::mt19937_64 rng(14);
  const int64_t t = 6, inter = 100;
  Tensor gate_up = random_tensor({t, 2 * inter}, DType::kF32, rng, 4.0f);
  Tensor fused = poisoned({t, inter}, DType::kF32);
  silu_mul_cpu(gate_up, fused);
  expect_all_written(fused);
  const auto g = to_doubles(gate_up);
  std::vector<double> want(static_cast<size_t>(t * inter));
  std::vector<float> gate, up;
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t j = 0; j < inter; ++j) {
      const double z = g[i * 2 * inter + j], u = g[i * 2 * inter + inter + j];
      want[i * inter + j] = z / (1.0 + std::exp(-z)) * u;
      gate.push_back(static_cast<float>(z));
      up.push_back(static_cast<float>(u));
    }
  }
  // A handful of fp32 roundings (exp, divide, multiply) per element.
  EXPECT_LT(max_rel_error(fused, want), 1e-6);
  Tensor separate = poisoned({t, inter}, DType::kF32);
  silu_mul_cpu(Tensor::from_floats(gate, {t, inter}, DType::kF32), Tensor::from_floats(up, {t, inter}, DType::kF32),
               separate);
  EXPECT_EQ(separate.to_vector(), fused.to_vector());
  // Saturating tails: silu(-100) = -0 (not NaN), silu(100) = 100.
  Tensor extreme = Tensor::from_floats({-100.0f, 100.0f, 1.0f, 1.0f}, {1, 4}, DType::kF32);
  Tensor e_out = Tensor::empty({1, 2}, DType::kF32);
  silu_mul_cpu(extreme, e_out);
  EXPECT_EQ(e_out.to_vector()[0], 0.0f);
  EXPECT_EQ(e_out.to_vector()[1], 100.0f);
}

}  // namespace
}  // namespace mlaserve::ops
