// The FP8 forms of the row norms (ops/rms_norm_fp8.h: rms_norm, in place too, add_rms_norm with a
// bf16 or f32 addend, add_sum_rms_norm) and of moe_combine_add_rms_norm (ops/moe_combine_norm.h,
// both combine kernels forced and the op's choice) against the two CUDA ops each replaces: the
// plain norm, then quantize_activations_fp8_cuda on its bf16 output, token-major and group-major.
// At V2-Lite's and V3's hidden sizes (2048, 7168; the MoE at their k and E), T = 1, 3, 16, 64,
// 1000, f32 and UE8M0 scales; small cases for compute-sanitizer with a partial last group
// (576: 4.5 groups) and widths that are not a multiple of 8 (the one-element path, where the op
// runs the quantiser after the norm).
//
// Bit for bit, everything: the normed output, the updated residual, the e4m3 codes and both scale
// layouts (the same fp32 values meet the same arithmetic, fp8_quant.cuh), on poisoned outputs
// (0xFF: NaN in e4m3 and f32; the reference never writes NaN, so equality also says every element
// was written). Inputs: x ~ N(0, 3²) with one all-zero row (its normed output is zero and the amax
// floor decides its scales), norm weights whose 128-channel groups are scaled by 2^u, u uniform in
// [-10, 10], so that the groups' scales spread over six decades.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/cuda/moe_dispatch_kernels.h"
#include "ops/fp8_block.h"
#include "ops/fp8_quant.h"
#include "ops/moe_combine_norm.h"
#include "ops/moe_dispatch.h"
#include "ops/rms_norm.h"
#include "ops/rms_norm_fp8.h"

namespace mlaserve::ops {
namespace {

using testing::CudaOpTest;
using testing::poisoned_gpu;
using testing::random_tensor;

constexpr float kEps = 1e-6f;

enum class Form { kRms, kRmsInPlace, kAdd, kAddF32, kAddSum };

const char* form_name(Form f) {
  switch (f) {
    case Form::kRms: return "rms_norm";
    case Form::kRmsInPlace: return "rms_norm in place";
    case Form::kAdd: return "add_rms_norm";
    case Form::kAddF32: return "add_rms_norm, f32 addend";
    case Form::kAddSum: return "add_sum_rms_norm";
  }
  return "";
}

std::string describe(int64_t t, int64_t k, Fp8ScaleFormat format) {
  return "T " + std::to_string(t) + " K " + std::to_string(k) +
         (format == Fp8ScaleFormat::kUE8M0 ? ", UE8M0 scales" : ", f32 scales");
}

// Differing bytes of two host tensors of the same size (e4m3 codes, f32 or bf16 bits).
int64_t byte_mismatches(const Tensor& got, const Tensor& want) {
  if (got.nbytes() != want.nbytes()) return static_cast<int64_t>(std::max(got.nbytes(), want.nbytes()));
  const auto* g = static_cast<const uint8_t*>(got.raw());
  const auto* w = static_cast<const uint8_t*>(want.raw());
  int64_t n = 0;
  for (size_t i = 0; i < got.nbytes(); ++i) n += g[i] != w[i] ? 1 : 0;
  return n;
}

// [d] norm weight whose 128-channel groups are scaled by 2^u (the note at the top).
Tensor group_scaled_weight(int64_t d, DType dtype, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> exponent(-10, 10);
  std::vector<float> w = random_tensor({d}, DType::kF32, rng, 0.5f).to_vector();
  for (int64_t c0 = 0; c0 < d; c0 += 128) {
    const float scale = std::ldexp(1.0f, exponent(rng));
    for (int64_t c = c0; c < std::min(d, c0 + 128); ++c) w[static_cast<size_t>(c)] *= scale;
  }
  return Tensor::from_floats(w, {d}, dtype);
}

class RmsNormFp8Cuda : public CudaOpTest {
 protected:
  // Poisoned [t, k] outputs, the group-major scales too when asked.
  static Fp8Activations poisoned_q(int64_t t, int64_t k, bool group_major) {
    const int64_t g = fp8_num_blocks(k);
    return {poisoned_gpu({t, k}, DType::kF8E4M3), poisoned_gpu({t, g}, DType::kF32),
            group_major ? poisoned_gpu({g, t}, DType::kF32) : Tensor()};
  }

  // The reference quantisation of a norm's bf16 output: quantize_activations_fp8_cuda in each layout.
  Fp8Activations reference_q(const Tensor& out, const ActQuantParams& act) {
    const int64_t t = out.dim(0), k = out.dim(1);
    Fp8Activations q = poisoned_q(t, k, true);
    quantize_activations_fp8_cuda(out, act, q.x_q, q.scales, cuda_stream());
    Tensor same_codes = poisoned_gpu({t, k}, DType::kF8E4M3);  // (the group-major run's codes: a scratch copy)
    quantize_activations_fp8_cuda(out, act, same_codes, q.scales_t, cuda_stream(), Fp8ScaleLayout::kGroupMajor);
    return q;
  }

  // got == want, bit for bit (scales_t only where got has it).
  void expect_same(const Fp8Activations& got, const Fp8Activations& want, const std::string& where) {
    EXPECT_EQ(byte_mismatches(to_host(got.x_q), to_host(want.x_q)), 0) << where << ": e4m3 codes differ";
    EXPECT_EQ(byte_mismatches(to_host(got.scales), to_host(want.scales)), 0) << where << ": token-major scales differ";
    if (got.scales_t.defined()) {
      EXPECT_EQ(byte_mismatches(to_host(got.scales_t), to_host(want.scales_t)), 0)
          << where << ": group-major scales differ";
    }
  }

  void expect_same_bits(const Tensor& got, const Tensor& want, const std::string& where, const char* what) {
    EXPECT_EQ(byte_mismatches(to_host(got), to_host(want)), 0) << where << ": " << what << " differs";
  }

  // One form at [t, k]: the fused op (with and without the group-major scales) against the norm
  // then the quantiser.
  void check(Form form, int64_t t, int64_t k, Fp8ScaleFormat format, DType weight_dtype, uint64_t seed) {
    const std::string where = std::string(form_name(form)) + ", " + describe(t, k, format);
    std::mt19937_64 rng(seed);
    std::vector<float> xv = random_tensor({t, k}, DType::kF32, rng, 3.0f).to_vector();
    if (t >= 3) std::fill(xv.begin() + (t / 2) * k, xv.begin() + (t / 2 + 1) * k, 0.0f);  // a zero row
    const bool f32_addend = form == Form::kAddF32 || form == Form::kAddSum;
    const Tensor x = Tensor::from_floats(xv, {t, k}, f32_addend ? DType::kF32 : DType::kBF16).to(Device::kCUDA);
    const Tensor rest = random_tensor({t, k}, DType::kF32, rng, 1.0f).to(Device::kCUDA);
    const Tensor residual = random_tensor({t, k}, DType::kBF16, rng, 8.0f);
    const Tensor weight = group_scaled_weight(k, weight_dtype, rng).to(Device::kCUDA);
    ActQuantParams act;
    act.scale_format = format;

    // The reference: the plain norm, then the quantiser.
    Tensor want_residual = residual.to(Device::kCUDA);
    Tensor want_out = poisoned_gpu({t, k}, DType::kBF16);
    switch (form) {
      case Form::kRms:
      case Form::kRmsInPlace: rms_norm_cuda(x, weight, kEps, want_out, cuda_stream()); break;
      case Form::kAdd:
      case Form::kAddF32: add_rms_norm_cuda(x, want_residual, weight, kEps, want_out, cuda_stream()); break;
      case Form::kAddSum: add_sum_rms_norm_cuda(x, rest, want_residual, weight, kEps, want_out, cuda_stream()); break;
    }
    const Fp8Activations want_q = reference_q(want_out, act);

    for (bool group_major : {true, false}) {
      const std::string at = where + (group_major ? ", both layouts" : ", token-major only");
      Tensor got_residual = residual.to(Device::kCUDA);
      Tensor got_out = form == Form::kRmsInPlace ? x.clone() : poisoned_gpu({t, k}, DType::kBF16);
      Fp8Activations got_q = poisoned_q(t, k, group_major);
      switch (form) {
        case Form::kRms: rms_norm_fp8(x, weight, kEps, got_out, act, got_q, stream()); break;
        case Form::kRmsInPlace: rms_norm_fp8(got_out, weight, kEps, got_out, act, got_q, stream()); break;
        case Form::kAdd:
        case Form::kAddF32: add_rms_norm_fp8(x, got_residual, weight, kEps, got_out, act, got_q, stream()); break;
        case Form::kAddSum:
          add_sum_rms_norm_fp8(x, rest, got_residual, weight, kEps, got_out, act, got_q, stream());
          break;
      }
      expect_same_bits(got_out, want_out, at, "normed output");
      expect_same_bits(got_residual, want_residual, at, "residual");
      expect_same(got_q, want_q, at);
    }
  }

  void check_all_forms(int64_t t, int64_t k, uint64_t seed) {
    for (Fp8ScaleFormat format : {Fp8ScaleFormat::kFloat32, Fp8ScaleFormat::kUE8M0}) {
      for (Form form : {Form::kRms, Form::kRmsInPlace, Form::kAdd, Form::kAddF32, Form::kAddSum}) {
        check(form, t, k, format, DType::kBF16, ++seed);
      }
    }
  }
};

TEST_F(RmsNormFp8Cuda, SmallShapes) {
  check_all_forms(3, 256, 10);
  check_all_forms(5, 576, 20);  // 4.5 groups: a partial last group on the fused path
  check(Form::kAdd, 4, 2048, Fp8ScaleFormat::kUE8M0, DType::kF32, 30);
}

TEST_F(RmsNormFp8Cuda, SmallOneElementPath) {
  check_all_forms(3, 196, 40);  // not a multiple of 8: the norm, then the quantiser
}

TEST_F(RmsNormFp8Cuda, V2LiteHidden) {
  uint64_t seed = 100;
  for (int64_t t : {1, 3, 16, 64, 1000}) check_all_forms(t, 2048, seed += 10);
}

TEST_F(RmsNormFp8Cuda, V3Hidden) {
  uint64_t seed = 200;
  for (int64_t t : {1, 3, 16, 64, 1000}) check_all_forms(t, 7168, seed += 10);
}

TEST_F(RmsNormFp8Cuda, V3QLoraNormInPlace) {  // q_a_layernorm's 1536 before q_b_proj
  for (int64_t t : {1, 16, 1000}) check(Form::kRmsInPlace, t, 1536, Fp8ScaleFormat::kFloat32, DType::kBF16, 300 + t);
}

TEST_F(RmsNormFp8Cuda, RejectsWrongShapes) {
  const Tensor x = Tensor::empty({4, 256}, DType::kBF16, Device::kCUDA);
  const Tensor weight = Tensor::empty({256}, DType::kBF16, Device::kCUDA);
  Tensor out = Tensor::empty({4, 256}, DType::kBF16, Device::kCUDA);
  Fp8Activations bad_scales{Tensor::empty({4, 256}, DType::kF8E4M3, Device::kCUDA),
                            Tensor::empty({4, 3}, DType::kF32, Device::kCUDA), Tensor()};
  EXPECT_THROW(rms_norm_fp8(x, weight, kEps, out, ActQuantParams{}, bad_scales, stream()), Error);
  Fp8Activations bad_t{Tensor::empty({4, 256}, DType::kF8E4M3, Device::kCUDA),
                       Tensor::empty({4, 2}, DType::kF32, Device::kCUDA),
                       Tensor::empty({4, 2}, DType::kF32, Device::kCUDA)};  // group-major is [2, 4]
  EXPECT_THROW(rms_norm_fp8(x, weight, kEps, out, ActQuantParams{}, bad_t, stream()), Error);
  const Tensor x3 = Tensor::empty({2, 2, 256}, DType::kBF16, Device::kCUDA);
  Tensor out3 = Tensor::empty({2, 2, 256}, DType::kBF16, Device::kCUDA);
  Fp8Activations q{Tensor::empty({4, 256}, DType::kF8E4M3, Device::kCUDA),
                   Tensor::empty({4, 2}, DType::kF32, Device::kCUDA), Tensor()};
  EXPECT_THROW(rms_norm_fp8(x3, weight, kEps, out3, ActQuantParams{}, q, stream()), Error);
}

// moe_combine_add_rms_norm_fp8 against moe_combine_add_rms_norm then the quantiser, with each
// combine kernel forced and the op's own choice.
class MoeCombineNormFp8Cuda : public RmsNormFp8Cuda {
 protected:
  void check_moe(int64_t t, int64_t k, int64_t e, int64_t h, bool shared, Fp8ScaleFormat format, uint64_t seed) {
    const std::string where = "moe_combine_add_rms_norm, k " + std::to_string(k) + (shared ? ", shared, " : ", ") +
                              describe(t, h, format);
    std::mt19937_64 rng(seed);
    std::vector<int32_t> all(static_cast<size_t>(e)), ids;
    for (int32_t i = 0; i < e; ++i) all[static_cast<size_t>(i)] = i;
    for (int64_t i = 0; i < t; ++i) {
      std::shuffle(all.begin(), all.end(), rng);
      ids.insert(ids.end(), all.begin(), all.begin() + k);
    }
    MoeGrouping grouping{Tensor::empty({e + 1}, DType::kI32), Tensor::empty({t * k}, DType::kI32),
                         Tensor::empty({t * k}, DType::kI32)};
    moe_group_by_expert_cpu(testing::i32_tensor(ids, {t, k}), e, grouping);
    Tensor weights = Tensor::empty({t, k}, DType::kF32);
    std::uniform_real_distribution<float> w(0.02f, 0.6f);
    for (int64_t i = 0; i < t * k; ++i) weights.data<float>()[i] = w(rng);
    const MoeCombineInputs in{random_tensor({t * k, h}, DType::kBF16, rng).to(Device::kCUDA),
                              grouping.sorted_pairs.to(Device::kCUDA), weights.to(Device::kCUDA),
                              shared ? random_tensor({t, h}, DType::kBF16, rng, 0.5f).to(Device::kCUDA) : Tensor()};
    const Tensor residual = random_tensor({t, h}, DType::kBF16, rng, 8.0f);
    const Tensor norm = group_scaled_weight(h, DType::kBF16, rng).to(Device::kCUDA);
    ActQuantParams act;
    act.scale_format = format;

    Tensor want_residual = residual.to(Device::kCUDA);
    Tensor want_out = poisoned_gpu({t, h}, DType::kBF16);
    moe_combine_add_rms_norm_cuda(in, want_residual, norm, kEps, want_out, cuda_stream());
    const Fp8Activations want_q = reference_q(want_out, act);
    for (MoeCombineKernel kernel : {MoeCombineKernel::kAuto, MoeCombineKernel::kScan, MoeCombineKernel::kRows}) {
      const std::string at = where + ", " + combine_kernel_name(kernel) + " kernel";
      Tensor got_residual = residual.to(Device::kCUDA);
      Tensor got_out = poisoned_gpu({t, h}, DType::kBF16);
      Fp8Activations got_q = poisoned_q(t, h, kernel != MoeCombineKernel::kRows);
      if (kernel == MoeCombineKernel::kAuto) {
        moe_combine_add_rms_norm_fp8(in, got_residual, norm, kEps, got_out, act, got_q, stream());
      } else {
        moe_combine_add_rms_norm_fp8_cuda(in, got_residual, norm, kEps, got_out, act, got_q, cuda_stream(), kernel);
      }
      expect_same_bits(got_out, want_out, at, "normed output");
      expect_same_bits(got_residual, want_residual, at, "residual");
      expect_same(got_q, want_q, at);
    }
  }
};

TEST_F(MoeCombineNormFp8Cuda, SmallShapes) {
  check_moe(3, 2, 8, 256, true, Fp8ScaleFormat::kFloat32, 1);
  check_moe(5, 3, 8, 576, false, Fp8ScaleFormat::kUE8M0, 2);
  check_moe(4, 2, 8, 196, true, Fp8ScaleFormat::kFloat32, 3);  // the one-element path
  check_moe(8, 6, 64, 2048, true, Fp8ScaleFormat::kUE8M0, 4);
}

TEST_F(MoeCombineNormFp8Cuda, V2LiteShapes) {
  uint64_t seed = 100;
  for (Fp8ScaleFormat format : {Fp8ScaleFormat::kFloat32, Fp8ScaleFormat::kUE8M0}) {
    for (int64_t t : {1, 3, 16, 64, 1000}) check_moe(t, 6, 64, 2048, true, format, ++seed);
  }
  check_moe(64, 6, 64, 2048, false, Fp8ScaleFormat::kFloat32, ++seed);
}

TEST_F(MoeCombineNormFp8Cuda, V3Shapes) {
  uint64_t seed = 200;
  for (Fp8ScaleFormat format : {Fp8ScaleFormat::kFloat32, Fp8ScaleFormat::kUE8M0}) {
    for (int64_t t : {1, 3, 16, 64, 1000}) check_moe(t, 8, 256, 7168, true, format, ++seed);
  }
}

}  // namespace
}  // namespace mlaserve::ops
