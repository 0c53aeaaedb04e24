// quantize_activations_fp8_cuda and silu_mul_quantize_fp8_cuda against the CPU reference on
// fresh random bf16 inputs at DeepSeek's GEMM input widths: H 2048 (V2-Lite) and 7168 (V3), Im
// 1408 / 2048 (experts), 18432 (V3's dense MLP), 1536 (q_lora_rank), 576 (4.5 groups: a partial
// last group) and 100 (one partial group), T from 1 to 4096.
//
// Inputs: Normal(0, 1) rows with every group rescaled by 2^u, u uniform in [-20, 20] (scales over
// twelve decades), some groups all zero (the amax floor decides their scale) and some with a
// single large outlier (the other values land in e4m3's subnormals). Outputs are poisoned (0xFF
// is NaN in e4m3 and f32) and must be fully written.
//
// Exactness: quantisation is bit-exact by construction (the same fp32 inputs, IEEE division for
// the scale and each quotient on both sides, round to nearest even with saturation), so codes
// and scales must equal the CPU's bit for bit, in both scale formats (zeros of either sign count
// as equal). The SwiGLU variant's
// reference is silu_mul_cpu then quantize_activations_fp8_cpu: the device expf and std::exp may
// differ by an ulp, which moves a quotient across an e4m3 rounding boundary only when it lies
// within an ulp of one; we allow codes one step apart (the same sign, adjacent magnitudes) on at
// most 1e-3 of the elements and scales within 4 ulp (1 ulp from the amax, rounding of amax / 448).
// Without SwiGLU, the group-major scale layout (cuBLASLt's [G, T]) must give the same codes and the
// transposed scales of the token-major run, bit for bit; so must the one pass that writes both
// layouts (Fp8Activations with scales_t), with and without SwiGLU.
// The weight quantiser (fp8_block.h) is checked the same way at the end of this file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_op_test_util.h"
#include "gemm_cuda_test_util.h"
#include "ops/fp8_block.h"
#include "ops/fp8_quant.h"
#include "ops/silu_mul.h"

namespace mlaserve::ops {
namespace {

using testing::fresh_seed;

// Equal e4m3 values: equal codes, or zeros of either sign (the sign of an underflow to zero is
// not part of the contract).
bool same_e4m3(uint8_t a, uint8_t b) { return a == b || ((a & 0x7F) == 0 && (b & 0x7F) == 0); }

int64_t e4m3_mismatches(const Tensor& got, const Tensor& want) {
  const auto* g = got.data<float8_e4m3>();
  const auto* w = want.data<float8_e4m3>();
  int64_t n = 0;
  for (int64_t i = 0; i < got.numel(); ++i) n += same_e4m3(g[i].bits, w[i].bits) ? 0 : 1;
  return n;
}

class Fp8QuantCuda : public testing::CudaOpTest {
 protected:
  // [rows, width] bf16 host values as described at the top.
  static Tensor make_input(int64_t rows, int64_t width, std::mt19937_64& rng) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> exponent(-20.0f, 20.0f);
    std::uniform_int_distribution<int> kind(0, 15);
    std::vector<float> v(static_cast<size_t>(rows * width));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c0 = 0; c0 < width; c0 += 128) {
        const int64_t c1 = std::min(width, c0 + 128);
        const int k = kind(rng);
        const float scale = std::exp2(exponent(rng));
        for (int64_t c = c0; c < c1; ++c) v[r * width + c] = k == 0 ? 0.0f : normal(rng) * scale;
        if (k == 1) v[r * width + c0] = 1000.0f * scale;  // one outlier: the rest underflow to subnormals
      }
    }
    return Tensor::from_floats(v, {rows, width}, DType::kBF16);
  }

  struct Result {
    Tensor q, scales;  // host copies
    Tensor scales_t;   // SwiGLU on the GPU: the same pass's group-major copy [G, T] (host)
  };

  // Entries of the group-major [G, T] got_t that are not the token-major [T, G] scales' transposed, bit for bit.
  static int64_t transposed_mismatches(const Tensor& got_t, const Tensor& scales) {
    const int64_t t = scales.dim(0), g = scales.dim(1);
    const float* got = got_t.data<float>();
    const float* want = scales.data<float>();
    int64_t differ = 0;
    for (int64_t r = 0; r < t; ++r) {
      for (int64_t j = 0; j < g; ++j) differ += float_bits(got[j * t + r]) == float_bits(want[r * g + j]) ? 0 : 1;
    }
    return differ;
  }

  Result run_gpu(const Tensor& x_host, int64_t k, const ActQuantParams& params, bool swiglu) {
    const int64_t t = x_host.dim(0), g = fp8_num_blocks(k);
    const Tensor x = x_host.to(Device::kCUDA);
    Tensor q = testing::poisoned_gpu({t, k}, DType::kF8E4M3, cuda_stream());
    Tensor s = testing::poisoned_gpu({t, g}, DType::kF32, cuda_stream());
    if (swiglu) {
      Fp8Activations out{q, s, testing::poisoned_gpu({g, t}, DType::kF32, cuda_stream())};
      silu_mul_quantize_fp8_cuda(x, params, out, cuda_stream());
      return Result{to_host(q), to_host(s), to_host(out.scales_t)};
    }
    quantize_activations_fp8(x, params, q, s, stream());
    return Result{to_host(q), to_host(s), Tensor()};
  }

  static Result run_cpu(const Tensor& x_host, int64_t k, const ActQuantParams& params, bool swiglu) {
    const int64_t t = x_host.dim(0);
    Tensor x = x_host.to_f32();
    if (swiglu) {
      Tensor h = Tensor::empty({t, k}, DType::kF32);
      silu_mul_cpu(x, h);
      x = h;
    }
    Result r{Tensor::empty({t, k}, DType::kF8E4M3), Tensor::empty({t, fp8_num_blocks(k)}, DType::kF32), Tensor()};
    quantize_activations_fp8_cpu(x, params, r.q, r.scales);
    return r;
  }

  // The group-major scale layout (cuBLASLt's [G, T]): the same codes and, transposed, the same
  // scales as the token-major run `token_major`, bit for bit.
  void check_group_major(const Tensor& x_host, const ActQuantParams& params, const Result& token_major) {
    const int64_t t = x_host.dim(0), k = x_host.dim(1), g = fp8_num_blocks(k);
    const Tensor x = x_host.to(Device::kCUDA);
    Tensor q = testing::poisoned_gpu({t, k}, DType::kF8E4M3, cuda_stream());
    Tensor s = testing::poisoned_gpu({g, t}, DType::kF32, cuda_stream());
    quantize_activations_fp8_cuda(x, params, q, s, cuda_stream(), Fp8ScaleLayout::kGroupMajor);
    const Tensor gq = to_host(q);
    EXPECT_EQ(std::memcmp(gq.raw(), token_major.q.raw(), static_cast<size_t>(t * k)), 0)
        << "group-major codes differ from the token-major run's";
    EXPECT_EQ(transposed_mismatches(to_host(s), token_major.scales), 0)
        << "group-major scales differ from the token-major run's, transposed (of " << t * g << ")";

    // Both layouts in one pass.
    Fp8Activations both{testing::poisoned_gpu({t, k}, DType::kF8E4M3, cuda_stream()),
                        testing::poisoned_gpu({t, g}, DType::kF32, cuda_stream()),
                        testing::poisoned_gpu({g, t}, DType::kF32, cuda_stream())};
    quantize_activations_fp8_cuda(x, params, both, cuda_stream());
    const Tensor bq = to_host(both.x_q), bs = to_host(both.scales);
    EXPECT_EQ(std::memcmp(bq.raw(), token_major.q.raw(), static_cast<size_t>(t * k)), 0)
        << "one-pass codes differ from the token-major run's";
    EXPECT_EQ(std::memcmp(bs.raw(), token_major.scales.raw(), static_cast<size_t>(t * g * 4)), 0)
        << "one-pass token-major scales differ from the token-major run's";
    EXPECT_EQ(transposed_mismatches(to_host(both.scales_t), token_major.scales), 0)
        << "one-pass group-major scales differ from the token-major run's, transposed (of " << t * g << ")";
  }

  void check(int64_t t, int64_t k, Fp8ScaleFormat format, bool swiglu) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + ", T " + std::to_string(t) + ", K " + std::to_string(k) +
                 (format == Fp8ScaleFormat::kUE8M0 ? ", ue8m0" : ", f32 scales") + (swiglu ? ", SwiGLU" : ""));
    std::mt19937_64 rng(seed);
    const Tensor x = make_input(t, swiglu ? 2 * k : k, rng);
    ActQuantParams params;
    params.scale_format = format;
    const Result got = run_gpu(x, k, params, swiglu);
    const Result want = run_cpu(x, k, params, swiglu);

    const auto* gq = got.q.data<float8_e4m3>();
    const auto* wq = want.q.data<float8_e4m3>();
    int64_t differ = 0, far = 0;
    for (int64_t i = 0; i < t * k; ++i) {
      if (same_e4m3(gq[i].bits, wq[i].bits)) continue;
      ++differ;
      const bool adjacent = (gq[i].bits & 0x80) == (wq[i].bits & 0x80) &&
                            std::abs(int{gq[i].bits & 0x7F} - int{wq[i].bits & 0x7F}) == 1 &&
                            (gq[i].bits & 0x7F) != 0x7F && (wq[i].bits & 0x7F) != 0x7F;  // not NaN
      far += adjacent ? 0 : 1;
    }
    const auto* gs = got.scales.data<float>();
    const auto* ws = want.scales.data<float>();
    int64_t scale_differ = 0;
    double worst_scale = 0.0;
    for (int64_t i = 0; i < got.scales.numel(); ++i) {
      if (float_bits(gs[i]) == float_bits(ws[i])) continue;
      ++scale_differ;
      worst_scale = std::max(worst_scale, std::isfinite(gs[i]) ? std::fabs(double(gs[i]) / ws[i] - 1.0) : 1e30);
    }
    testing::record_error("code mismatches", static_cast<double>(differ));
    if (!swiglu) {
      EXPECT_EQ(differ, 0) << "e4m3 codes differ from the CPU's (of " << t * k << ")";
      EXPECT_EQ(scale_differ, 0) << "scales differ from the CPU's (worst relative " << worst_scale << ")";
      check_group_major(x, params, got);
    } else {
      EXPECT_EQ(far, 0) << "codes more than one e4m3 step from the CPU's";
      EXPECT_LE(differ, std::max<int64_t>(1, t * k / 1000)) << "codes one step apart, of " << t * k;
      EXPECT_LE(worst_scale, 4.8e-7) << scale_differ << " scales differ";
      EXPECT_EQ(transposed_mismatches(got.scales_t, got.scales), 0)
          << "SwiGLU's group-major scales differ from its token-major ones, transposed";
    }
  }
};

// ---- small cases (also run under compute-sanitizer) ------------------------------------------

TEST_F(Fp8QuantCuda, SmallFullGroups) {
  check(3, 256, Fp8ScaleFormat::kFloat32, false);
  check(5, 384, Fp8ScaleFormat::kUE8M0, false);
}

TEST_F(Fp8QuantCuda, SmallPartialGroups) {
  check(4, 100, Fp8ScaleFormat::kFloat32, false);
  check(3, 576, Fp8ScaleFormat::kUE8M0, false);
  check(2, 130, Fp8ScaleFormat::kFloat32, true);
}

TEST_F(Fp8QuantCuda, SmallSwiGlu) { check(7, 256, Fp8ScaleFormat::kFloat32, true); }

TEST_F(Fp8QuantCuda, SmallNoRows) {
  Tensor x = Tensor::empty({0, 256}, DType::kBF16, Device::kCUDA);
  Tensor q = Tensor::empty({0, 256}, DType::kF8E4M3, Device::kCUDA);
  Tensor s = Tensor::empty({0, 2}, DType::kF32, Device::kCUDA);
  quantize_activations_fp8(x, ActQuantParams{}, q, s, stream());
  to_host(s);
}

TEST_F(Fp8QuantCuda, RejectsWrongShapes) {
  Tensor x = Tensor::empty({4, 256}, DType::kBF16, Device::kCUDA);
  Tensor q = Tensor::empty({4, 256}, DType::kF8E4M3, Device::kCUDA);
  Tensor s = Tensor::empty({4, 3}, DType::kF32, Device::kCUDA);
  EXPECT_THROW(quantize_activations_fp8(x, ActQuantParams{}, q, s, stream()), Error);
  Tensor s_t = Tensor::empty({4, 2}, DType::kF32, Device::kCUDA);  // group-major is [2, 4]
  EXPECT_THROW(quantize_activations_fp8_cuda(x, ActQuantParams{}, q, s_t, cuda_stream(), Fp8ScaleLayout::kGroupMajor),
               Error);
}

// ---- DeepSeek widths -------------------------------------------------------------------------

TEST_F(Fp8QuantCuda, HiddenWidths) {
  for (int64_t t : {1, 64, 4096}) {
    check(t, 2048, Fp8ScaleFormat::kFloat32, false);
    check(t, 7168, Fp8ScaleFormat::kFloat32, false);
    check(t, 7168, Fp8ScaleFormat::kUE8M0, false);
  }
}

TEST_F(Fp8QuantCuda, OtherGemmInputs) {
  for (int64_t k : {1408, 1536, 18432, 576, 10944}) check(257, k, Fp8ScaleFormat::kFloat32, false);
}

TEST_F(Fp8QuantCuda, SwiGluExpertAndDenseWidths) {
  for (int64_t k : {1408, 2048, 18432, 10944}) check(300, k, Fp8ScaleFormat::kFloat32, true);
  check(64, 2048, Fp8ScaleFormat::kUE8M0, true);
}

// Decode steps' SwiGLU states: one CTA or a few whose warps past the last group return at once and
// whose last warp may have an idle half (a TP8 rank's shares of V3's shared expert, 256, and dense
// MLP, 2304; V3's shared expert, 2048).
TEST_F(Fp8QuantCuda, SwiGluDecodeWidths) {
  for (int64_t t : {1, 8}) {
    for (int64_t k : {256, 2304}) check(t, k, Fp8ScaleFormat::kFloat32, true);
  }
  check(1, 2048, Fp8ScaleFormat::kFloat32, true);
}

// ---- block-FP8 weight quantisation (ops/fp8_block.h) ------------------------------------------
//
// quantize_weight_block_fp8_cuda against the CPU quantiser on bf16 weights (the same fp32 values
// on both sides; IEEE division and product, RNE saturating conversion): codes and scales equal bit
// for bit. Shapes: kv_a_proj_with_mqa [576, 7168] (a partial last row block), V2-Lite's q_proj
// [3072, 2048], V3's q_b_proj [24576, 1536], partial blocks on both axes, and an all-zero block
// (the 1e-4 amax floor). Blocks get scales over ten decades, as in make_input.

class Fp8WeightQuantCuda : public testing::CudaOpTest {
 protected:
  void check(int64_t n, int64_t k) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + ", [" + std::to_string(n) + ", " + std::to_string(k) + "]");
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> exponent(-16.0f, 16.0f);
    std::vector<float> v(static_cast<size_t>(n * k));
    for (int64_t br = 0; br < fp8_num_blocks(n); ++br) {
      for (int64_t bc = 0; bc < fp8_num_blocks(k); ++bc) {
        const float scale = (br + bc) % 7 == 3 ? 0.0f : std::exp2(exponent(rng));
        for (int64_t r = br * 128; r < std::min(n, br * 128 + 128); ++r) {
          for (int64_t c = bc * 128; c < std::min(k, bc * 128 + 128); ++c) v[r * k + c] = normal(rng) * scale;
        }
      }
    }
    const Tensor w = Tensor::from_floats(v, {n, k}, DType::kBF16);
    Tensor q = testing::poisoned_gpu({n, k}, DType::kF8E4M3, cuda_stream());
    Tensor s = testing::poisoned_gpu({fp8_num_blocks(n), fp8_num_blocks(k)}, DType::kF32, cuda_stream());
    quantize_weight_block_fp8(w.to(Device::kCUDA), q, s, stream());
    const Tensor gq = to_host(q), gs = to_host(s);
    Tensor wq = Tensor::empty({n, k}, DType::kF8E4M3), ws = Tensor::empty(gs.shape(), DType::kF32);
    quantize_weight_block_fp8_cpu(w, wq, ws);
    EXPECT_EQ(e4m3_mismatches(gq, wq), 0) << "e4m3 codes differ from the CPU's";
    EXPECT_EQ(std::memcmp(gs.raw(), ws.raw(), gs.nbytes()), 0) << "scales differ from the CPU's";
  }
};

TEST_F(Fp8WeightQuantCuda, SmallPartialBlocks) {
  check(200, 300);
  check(64, 128);
}

TEST_F(Fp8WeightQuantCuda, DeepSeekShapes) {
  check(576, 7168);
  check(3072, 2048);
  check(24576, 1536);
}

}  // namespace
}  // namespace mlaserve::ops
