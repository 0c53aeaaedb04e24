// Block-scaled FP8 (MODEL_SPEC §6, §10 item 7): weight dequantisation with edge blocks, weight
// and activation quantisation (alone and as the norms' FP8 forms), the W8A8 GEMM emulation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "op_test_util.h"
#include "ops/fp8_block.h"
#include "ops/fp8_quant.h"
#include "ops/linear.h"
#include "ops/linear_fp8.h"
#include "ops/moe_combine_norm.h"
#include "ops/moe_dispatch.h"
#include "ops/rms_norm.h"
#include "ops/rms_norm_fp8.h"
#include "ops/silu_mul.h"

namespace mlaserve::ops {
namespace {

using testing::expect_all_written;
using testing::i32_tensor;
using testing::poisoned;
using testing::random_tensor;
using testing::rel_l2_error;
using testing::to_doubles;

// Random e4m3 bytes (every finite value, NaN codes excluded) and distinct per-block scales, so
// an indexing slip in either dimension shows.
void random_block_fp8(int64_t n, int64_t k, std::mt19937_64& rng, Tensor& w_q, Tensor& scale_inv) {
  w_q = Tensor::empty({n, k}, DType::kF8E4M3);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int64_t i = 0; i < n * k; ++i) {
    uint8_t b = 0;
    do b = static_cast<uint8_t>(byte(rng));
    while ((b & 0x7f) == 0x7f);
    w_q.data<float8_e4m3>()[i] = float8_e4m3{b};
  }
  scale_inv = Tensor::empty({fp8_num_blocks(n), fp8_num_blocks(k)}, DType::kF32);
  std::uniform_real_distribution<float> scale(1e-4f, 1e-2f);
  for (int64_t i = 0; i < scale_inv.numel(); ++i) scale_inv.data<float>()[i] = scale(rng);
}

TEST(Fp8Dequant, KvAProjShapeWithEdgeBlockMatchesFp8CastBf16) {
  // kv_a_proj_with_mqa of V3: [576, 7168] with scale_inv [5, 56]; rows 512..575 are the 64-row
  // edge block. Also a K that is not a multiple of 128 (edge columns).
  std::mt19937_64 rng(30);
  for (auto [n, k] : {std::pair<int64_t, int64_t>{576, 7168}, {576, 300}}) {
    Tensor w_q, s;
    random_block_fp8(n, k, rng, w_q, s);
    ASSERT_EQ(s.shape(), Shape({5, fp8_num_blocks(k)}));
    Tensor out = poisoned({n, k}, DType::kF32), out_bf16 = Tensor::empty({n, k}, DType::kBF16);
    dequantize_block_fp8_cpu(w_q, s, out);
    dequantize_block_fp8_cpu(w_q, s, out_bf16);
    expect_all_written(out);
    const float* o = out.data<float>();
    const bfloat16* ob = out_bf16.data<bfloat16>();
    const float* sp = s.data<float>();
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t c = 0; c < k; ++c) {
        // fp8_cast_bf16: the fp32 product (exact in double, one rounding), then a bf16 cast.
        const double v = static_cast<double>(e4m3_to_float(w_q.data<float8_e4m3>()[r * k + c])) *
                         sp[(r / 128) * s.dim(1) + c / 128];
        ASSERT_EQ(o[r * k + c], static_cast<float>(v)) << r << ", " << c;
        ASSERT_EQ(ob[r * k + c].bits, float_to_bf16(static_cast<float>(v)).bits) << r << ", " << c;
      }
    }
  }
}

TEST(Fp8Dequant, RejectsWrongScaleShape) {
  Tensor w_q = Tensor::zeros({576, 256}, DType::kF8E4M3), out = Tensor::empty({576, 256}, DType::kF32);
  EXPECT_THROW(dequantize_block_fp8_cpu(w_q, Tensor::zeros({4, 2}, DType::kF32), out), Error);  // floor, not ceil
  EXPECT_THROW(dequantize_block_fp8_cpu(w_q, Tensor::zeros({5, 2}, DType::kBF16), out), Error);
}

TEST(Fp8WeightQuant, RoundTripWithinHalfAnE4m3Step) {
  std::mt19937_64 rng(31);
  const int64_t n = 300, k = 200;  // edge blocks in both dimensions
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    Tensor w = random_tensor({n, k}, dtype, rng, 0.02f);
    Tensor w_q = Tensor::empty({n, k}, DType::kF8E4M3);
    Tensor s = poisoned({3, 2}, DType::kF32);
    quantize_weight_block_fp8_cpu(w, w_q, s);
    expect_all_written(s);
    Tensor back = Tensor::empty({n, k}, DType::kF32);
    dequantize_block_fp8_cpu(w_q, s, back);
    const auto wd = to_doubles(w), bd = to_doubles(back);
    std::vector<double> amax(6, 0.0);
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t c = 0; c < k; ++c) {
        const double sc = s.data<float>()[(r / 128) * 2 + c / 128];
        // e4m3 keeps 3 mantissa bits: rounding error <= 2^-4 relative for normals, and half the
        // subnormal step (2^-10 in fp8 units, i.e. sc · 2^-10) at the bottom.
        ASSERT_LE(std::abs(bd[r * k + c] - wd[r * k + c]), std::abs(wd[r * k + c]) / 16 + sc / 1024 + 1e-12)
            << r << ", " << c;
        double& m = amax[(r / 128) * 2 + c / 128];
        m = std::max(m, std::abs(wd[r * k + c]));
      }
    }
    // scale_inv = block amax / 448 (one fp32 division).
    for (int b = 0; b < 6; ++b) EXPECT_NEAR(s.data<float>()[b], amax[b] / 448.0, amax[b] / 448.0 * 1e-6);
  }
}

// Host outputs of a quantised [t, k] activation, both scale layouts, poisoned.
struct Fp8ActivationsHost {
  Fp8ActivationsHost(int64_t t, int64_t k)
      : x_q(Tensor::empty({t, k}, DType::kF8E4M3)),
        scales(poisoned({t, fp8_num_blocks(k)}, DType::kF32)),
        scales_t(poisoned({fp8_num_blocks(k), t}, DType::kF32)) {}
  Tensor x_q, scales, scales_t;
};

TEST(Fp8ActQuant, MatchesDefinitionBitwise) {
  std::mt19937_64 rng(32);
  for (int64_t k : {384L, 300L}) {  // a partial last group too
    Tensor x = random_tensor({6, k}, DType::kF32, rng, 3.0f);
    for (int64_t c = 0; c < k; ++c) x.data<float>()[2 * k + c] = 0.0f;  // an all-zero token
    const int64_t groups = fp8_num_blocks(k);
    Tensor x_q = Tensor::empty({6, k}, DType::kF8E4M3), s = poisoned({6, groups}, DType::kF32);
    quantize_activations_fp8_cpu(x, {}, x_q, s);
    expect_all_written(s);
    for (int64_t t = 0; t < 6; ++t) {
      for (int64_t g = 0; g < groups; ++g) {
        float amax = 1e-4f;
        for (int64_t c = g * 128; c < std::min(k, (g + 1) * 128); ++c) {
          amax = std::max(amax, std::abs(x.data<float>()[t * k + c]));
        }
        const float scale = amax / 448.0f;
        ASSERT_EQ(s.data<float>()[t * groups + g], scale);
        for (int64_t c = g * 128; c < std::min(k, (g + 1) * 128); ++c) {
          const uint8_t want = float_to_e4m3(x.data<float>()[t * k + c] / scale).bits;
          ASSERT_EQ(x_q.data<float8_e4m3>()[t * k + c].bits, want) << t << ", " << c;
        }
      }
    }
    // The group's amax element lands on ±448 (or just below it); nothing is NaN.
    for (int64_t i = 0; i < x_q.numel(); ++i) ASSERT_FALSE(std::isnan(e4m3_to_float(x_q.data<float8_e4m3>()[i])));
  }
}

TEST(Fp8ActQuant, Ue8m0ScalesArePowersOfTwoRoundedUp) {
  std::mt19937_64 rng(33);
  Tensor x = random_tensor({8, 256}, DType::kF32, rng, 5.0f);
  x.data<float>()[0] = 448.0f * 0.25f;  // token 0, group 0: amax / 448 is exactly 2^-2
  for (int64_t c = 1; c < 128; ++c) x.data<float>()[c] = 0.1f;
  Tensor x_q = Tensor::empty({8, 256}, DType::kF8E4M3), s = Tensor::empty({8, 2}, DType::kF32);
  ActQuantParams params;
  params.scale_format = Fp8ScaleFormat::kUE8M0;
  quantize_activations_fp8_cpu(x, params, x_q, s);
  EXPECT_EQ(s.data<float>()[0], 0.25f);
  for (int64_t t = 0; t < 8; ++t) {
    for (int64_t g = 0; g < 2; ++g) {
      float amax = 0.0f;
      for (int64_t c = g * 128; c < (g + 1) * 128; ++c) amax = std::max(amax, std::abs(x.data<float>()[t * 256 + c]));
      const float sc = s.data<float>()[t * 2 + g];
      int e = 0;
      ASSERT_EQ(std::frexp(sc, &e), 0.5f) << "not a power of two: " << sc;
      ASSERT_GE(sc, amax / 448.0f);
      ASSERT_LT(sc, 2.0f * amax / 448.0f);
    }
  }
}

// The FP8 forms of the norms (rms_norm_fp8.h, moe_combine_norm.h) on the host: the norm, then the
// quantiser on its f32 output, bit for bit, and the group-major scales the token-major ones
// transposed. Through the dispatch, which the CPU model calls.
TEST(Fp8NormQuant, NormThenQuantiserBitwise) {
  std::mt19937_64 rng(35);
  for (int64_t k : {384L, 300L}) {  // a partial last group too
    const int64_t t = 5, groups = fp8_num_blocks(k);
    const Tensor x = random_tensor({t, k}, DType::kF32, rng, 3.0f);
    const Tensor rest = random_tensor({t, k}, DType::kF32, rng, 1.0f);
    const Tensor residual = random_tensor({t, k}, DType::kF32, rng, 8.0f);
    const Tensor weight = random_tensor({k}, DType::kF32, rng, 0.5f);
    MoeGrouping grouping{Tensor::empty({5}, DType::kI32), Tensor::empty({t * 2}, DType::kI32),
                         Tensor::empty({t * 2}, DType::kI32)};
    moe_group_by_expert_cpu(i32_tensor({0, 1, 2, 3, 1, 0, 3, 2, 0, 2}, {t, 2}), 4, grouping);
    const MoeCombineInputs moe{random_tensor({t * 2, k}, DType::kF32, rng), grouping.sorted_pairs,
                               random_tensor({t, 2}, DType::kF32, rng, 0.3f), random_tensor({t, k}, DType::kF32, rng)};
    ActQuantParams act;
    act.scale_format = k == 300 ? Fp8ScaleFormat::kUE8M0 : Fp8ScaleFormat::kFloat32;
    for (int form = 0; form < 4; ++form) {
      SCOPED_TRACE("K " + std::to_string(k) + ", form " + std::to_string(form));
      Tensor want_res = residual.clone(), got_res = residual.clone();
      Tensor want = Tensor::empty({t, k}, DType::kF32), got = poisoned({t, k}, DType::kF32);
      Fp8ActivationsHost want_q(t, k), got_q(t, k);
      Fp8Activations fused{got_q.x_q, got_q.scales, got_q.scales_t};
      switch (form) {
        case 0:
          rms_norm_cpu(x, weight, 1e-6f, want);
          rms_norm_fp8(x, weight, 1e-6f, got, act, fused);
          break;
        case 1:
          add_rms_norm_cpu(x, want_res, weight, 1e-6f, want);
          add_rms_norm_fp8(x, got_res, weight, 1e-6f, got, act, fused);
          break;
        case 2:
          add_sum_rms_norm_cpu(x, rest, want_res, weight, 1e-6f, want);
          add_sum_rms_norm_fp8(x, rest, got_res, weight, 1e-6f, got, act, fused);
          break;
        default:
          moe_combine_add_rms_norm_cpu(moe, want_res, weight, 1e-6f, want);
          moe_combine_add_rms_norm_fp8(moe, got_res, weight, 1e-6f, got, act, fused);
          break;
      }
      quantize_activations_fp8_cpu(want, act, want_q.x_q, want_q.scales);
      EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0) << "normed output";
      EXPECT_EQ(std::memcmp(got_res.raw(), want_res.raw(), want_res.nbytes()), 0) << "residual";
      EXPECT_EQ(std::memcmp(got_q.x_q.raw(), want_q.x_q.raw(), static_cast<size_t>(t * k)), 0) << "codes";
      EXPECT_EQ(std::memcmp(got_q.scales.raw(), want_q.scales.raw(), want_q.scales.nbytes()), 0) << "scales";
      for (int64_t i = 0; i < t; ++i) {
        for (int64_t g = 0; g < groups; ++g) {
          ASSERT_EQ(got_q.scales_t.data<float>()[g * t + i], want_q.scales.data<float>()[i * groups + g]);
        }
      }
    }
  }
}

// The SwiGLU quantiser of the down projections' input (fp8_quant.h) on the host, through the
// dispatch: silu_mul_cpu then the quantiser, bit for bit, and the group-major scales the
// token-major ones transposed.
TEST(Fp8ActQuant, SwiGluThenQuantiserBitwise) {
  std::mt19937_64 rng(36);
  for (int64_t k : {384L, 300L}) {  // a partial last group too
    const int64_t t = 5, groups = fp8_num_blocks(k);
    const Tensor gate_up = random_tensor({t, 2 * k}, DType::kF32, rng, 3.0f);
    ActQuantParams act;
    act.scale_format = k == 300 ? Fp8ScaleFormat::kUE8M0 : Fp8ScaleFormat::kFloat32;
    Fp8ActivationsHost want_q(t, k), got_q(t, k);
    Fp8Activations got{got_q.x_q, got_q.scales, got_q.scales_t};
    silu_mul_quantize_fp8(gate_up, act, got);
    Tensor hidden = Tensor::empty({t, k}, DType::kF32);
    silu_mul_cpu(gate_up, hidden);
    quantize_activations_fp8_cpu(hidden, act, want_q.x_q, want_q.scales);
    EXPECT_EQ(std::memcmp(got_q.x_q.raw(), want_q.x_q.raw(), static_cast<size_t>(t * k)), 0) << "codes, K " << k;
    EXPECT_EQ(std::memcmp(got_q.scales.raw(), want_q.scales.raw(), want_q.scales.nbytes()), 0) << "scales, K " << k;
    for (int64_t i = 0; i < t; ++i) {
      for (int64_t g = 0; g < groups; ++g) {
        ASSERT_EQ(got_q.scales_t.data<float>()[g * t + i], want_q.scales.data<float>()[i * groups + g]) << "K " << k;
      }
    }
  }
}

// y = Σ_g (Σ_κ x_q·w_q) · s_x · s_w with every product and sum exact in double.
std::vector<double> naive_w8a8(const Tensor& x_q, const Tensor& sx, const Tensor& w_q, const Tensor& sw) {
  const int64_t t = x_q.dim(0), k = x_q.dim(1), n = w_q.dim(0), groups = fp8_num_blocks(k);
  const auto x = to_doubles(x_q), w = to_doubles(w_q), sxd = to_doubles(sx), swd = to_doubles(sw);
  std::vector<double> y(static_cast<size_t>(t * n), 0.0);
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t o = 0; o < n; ++o) {
      for (int64_t g = 0; g < groups; ++g) {
        double part = 0.0;
        for (int64_t c = g * 128; c < std::min(k, (g + 1) * 128); ++c) part += x[i * k + c] * w[o * k + c];
        y[i * n + o] += part * sxd[i * groups + g] * swd[(o / 128) * groups + g];
      }
    }
  }
  return y;
}

TEST(LinearFp8, W8A8MatchesExactEmulation) {
  std::mt19937_64 rng(34);
  for (auto [t, k, n] : {std::tuple<int64_t, int64_t, int64_t>{9, 512, 576}, {3, 300, 130}}) {
    Tensor x = random_tensor({t, k}, DType::kF32, rng);
    Tensor x_q = Tensor::empty({t, k}, DType::kF8E4M3), sx = Tensor::empty({t, fp8_num_blocks(k)}, DType::kF32);
    quantize_activations_fp8_cpu(x, {}, x_q, sx);
    Tensor w_q, sw;
    random_block_fp8(n, k, rng, w_q, sw);
    Tensor y = poisoned({t, n}, DType::kF32);
    linear_fp8_w8a8_cpu(x_q, sx, w_q, sw, y);
    expect_all_written(y);
    // Products of e4m3 values are exact in fp32; only the fp32 group sums (128 terms) and the
    // scale multiplies round: ~1e-6 relative of the output scale at most.
    EXPECT_LT(testing::max_rel_error(y, naive_w8a8(x_q, sx, w_q, sw)), 1e-5) << t << "x" << k << "x" << n;
  }
}

TEST(LinearFp8, W8A8WithinActivationRoundingOfDequantisedGemm) {
  // §10 item 7: the blockwise FP8 GEMM against an fp32 GEMM on the dequantised weights. The
  // weights are identical on both sides, so the whole difference is the e4m3 rounding of the
  // activations: 3 mantissa bits give a relative rounding error uniform over ±2^-4..±2^-5 of each
  // value (RMS ≈ 2.5%), and a dot product of independent errors keeps that relative RMS. So the
  // relative L2 error sits near 2.5%: between 1.5% and 3.5% here, with a smaller bound not
  // achievable and a larger one hiding a real scaling bug (wrong scale: > 10%).
  std::mt19937_64 rng(35);
  const int64_t t = 64, k = 7168 / 4, n = 576;
  Tensor x = random_tensor({t, k}, DType::kF32, rng);
  Tensor w = random_tensor({n, k}, DType::kBF16, rng, 0.02f);
  Tensor w_q = Tensor::empty({n, k}, DType::kF8E4M3), sw = Tensor::empty({5, k / 128}, DType::kF32);
  quantize_weight_block_fp8_cpu(w, w_q, sw);
  Tensor w_deq = Tensor::empty({n, k}, DType::kF32);
  dequantize_block_fp8_cpu(w_q, sw, w_deq);

  Tensor y_ref = Tensor::empty({t, n}, DType::kF32), y = poisoned({t, n}, DType::kF32);
  linear_cpu(x, w_deq, y_ref);
  linear_fp8_cpu(x, w_q, sw, {}, y);
  expect_all_written(y);
  const double err = rel_l2_error(to_doubles(y), to_doubles(y_ref));
  testing::record_error("rel_l2", err);
  EXPECT_GT(err, 0.015);
  EXPECT_LT(err, 0.035);
}

}  // namespace
}  // namespace mlaserve::ops
