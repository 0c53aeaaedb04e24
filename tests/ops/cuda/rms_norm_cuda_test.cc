// rms_norm_cuda and add_rms_norm_cuda (through the dispatch) against the CPU references at
// DeepSeek's norm widths: hidden 7168 (V3) and 2048 (V2-Lite), q_lora 1536, kv_lora 512; T from 1
// to 2048; f32 and bf16 weights; in place (out == x).
//
// Tolerances. Both sides see the same bf16 inputs; the GPU's fp32 sum of squares differs from
// the CPU's only in order (~1e-7 relative), and its output is rounded once to bf16: relative
// error <= 2^-8 (bf16's unit roundoff, 3.9e-3) per element, so the per-row relative L2 error is
// below 3.9e-3 (~2.2e-3 for rounding errors spread evenly); the check is 4e-3. add_rms_norm:
// the GPU's residual stream is bf16, so the updated residual must equal the CPU's fp32
// residual + x rounded to bf16 BIT FOR BIT (one fp32 add, one rounding on both sides), and the
// output is compared with rms_norm_cpu of that rounded residual (same 4e-3), and with
// add_rms_norm_cpu's fp32-residual output within 1e-2 (one more bf16 rounding of its input:
// <= 7.8e-3). add_rms_norm's addend is also tested in f32 (random values that bf16 cannot hold:
// the all-reduced sum of tensor-parallel partial outputs), which the GPU rounds to bf16 before the
// add, as one GPU's GEMM stores that sum: the residual must then equal bf16(residual + bf16(x))
// bit for bit (adding x unrounded would change many bits), and the output stays within 1e-2 of
// add_rms_norm_cpu on the unrounded x (one more rounding: <= 3 · 2^-9 per element).
// add_sum_rms_norm (the MoE's shared and routed parts under tensor parallelism, both f32): the
// residual must equal bf16(residual + bf16(bf16(base) + rest)) bit for bit, computed here on the
// host, and the output rms_norm_cpu of it within 4e-3.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/rms_norm.h"

namespace mlaserve::ops {
namespace {

using testing::count_nan;
using testing::CudaOpTest;
using testing::poisoned_gpu;
using testing::random_tensor;
using testing::worst_row_rel_l2;

constexpr float kEps = 1e-6f;

class RmsNormCuda : public CudaOpTest {
 protected:
  // rms_norm on [t, d]: separate output, then in place.
  void check_norm(int64_t t, int64_t d, DType weight_dtype, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const Tensor x = random_tensor({t, d}, DType::kBF16, rng, 3.0f);
    const Tensor weight = random_tensor({d}, weight_dtype, rng, 0.5f);
    Tensor want = Tensor::empty({t, d}, DType::kF32);
    rms_norm_cpu(x.to_f32(), weight.to_f32(), kEps, want);
    const std::vector<float> expect = want.to_vector();

    const Tensor w_gpu = weight.to(Device::kCUDA);
    Tensor out = poisoned_gpu({t, d}, DType::kBF16);
    rms_norm(x.to(Device::kCUDA), w_gpu, kEps, out, stream());
    const std::vector<float> got = to_host(out).to_vector();
    ASSERT_EQ(count_nan(got), 0) << "elements left unwritten";
    const double err = worst_row_rel_l2(got, expect, d);
    testing::record_error("rms_norm_worst_row_rel_l2", err);
    EXPECT_LT(err, 4e-3);

    Tensor inplace = x.to(Device::kCUDA);
    rms_norm(inplace, w_gpu, kEps, inplace, stream());
    EXPECT_EQ(testing::mismatches(to_host(inplace).to_vector(), got), 0) << "in place must give the same bits";
  }

  void check_add_norm(int64_t t, int64_t d, DType weight_dtype, uint64_t seed, DType x_dtype = DType::kBF16) {
    std::mt19937_64 rng(seed);
    const Tensor x = random_tensor({t, d}, x_dtype, rng, 2.0f);
    const Tensor residual = random_tensor({t, d}, DType::kBF16, rng, 8.0f);
    const Tensor weight = random_tensor({d}, weight_dtype, rng, 0.5f);

    Tensor cpu_out = Tensor::empty({t, d}, DType::kF32);  // all fp32, x as given
    {
      Tensor fp32_residual = residual.to_f32();
      add_rms_norm_cpu(x.to_f32(), fp32_residual, weight.to_f32(), kEps, cpu_out);
    }
    Tensor cpu_residual = residual.to_f32();
    Tensor scratch = Tensor::empty({t, d}, DType::kF32);
    add_rms_norm_cpu(x.to_dtype(DType::kBF16).to_f32(), cpu_residual, weight.to_f32(), kEps, scratch);
    const Tensor rounded_residual = cpu_residual.to_dtype(DType::kBF16);  // the bf16 residual stream
    Tensor want = Tensor::empty({t, d}, DType::kF32);
    rms_norm_cpu(rounded_residual.to_f32(), weight.to_f32(), kEps, want);

    Tensor res_gpu = residual.to(Device::kCUDA);
    Tensor out = poisoned_gpu({t, d}, DType::kBF16);
    add_rms_norm(x.to(Device::kCUDA), res_gpu, weight.to(Device::kCUDA), kEps, out, stream());
    const std::vector<float> got = to_host(out).to_vector();
    ASSERT_EQ(count_nan(got), 0) << "elements left unwritten";
    EXPECT_EQ(testing::mismatches(testing::bf16_bits(to_host(res_gpu)), testing::bf16_bits(rounded_residual)), 0)
        << "residual must be bf16(residual + bf16(x))";
    const double err = worst_row_rel_l2(got, want.to_vector(), d);
    const double err_fp32_residual = worst_row_rel_l2(got, cpu_out.to_vector(), d);
    testing::record_error("add_rms_norm_worst_row_rel_l2", err);
    testing::record_error("add_rms_norm_vs_fp32_residual", err_fp32_residual);
    EXPECT_LT(err, 4e-3);
    EXPECT_LT(err_fp32_residual, 1e-2);
  }

  // add_sum_rms_norm_cuda: the rounding sequence of one GPU's MoE, bit for bit.
  void check_add_sum_norm(int64_t t, int64_t d, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const Tensor base = random_tensor({t, d}, DType::kF32, rng, 2.0f);
    const Tensor rest = random_tensor({t, d}, DType::kF32, rng, 1.0f);
    const Tensor residual = random_tensor({t, d}, DType::kBF16, rng, 8.0f);
    const Tensor weight = random_tensor({d}, DType::kBF16, rng, 0.5f);
    std::vector<float> expect_res = residual.to_vector();
    const std::vector<float> b = base.to_vector(), r = rest.to_vector();
    for (size_t i = 0; i < expect_res.size(); ++i) {
      expect_res[i] = round_bf16(expect_res[i] + round_bf16(round_bf16(b[i]) + r[i]));
    }
    const Tensor rounded_residual = Tensor::from_floats(expect_res, {t, d}, DType::kBF16);
    Tensor want = Tensor::empty({t, d}, DType::kF32);
    rms_norm_cpu(rounded_residual.to_f32(), weight.to_f32(), kEps, want);

    Tensor res_gpu = residual.to(Device::kCUDA);
    Tensor out = poisoned_gpu({t, d}, DType::kBF16);
    add_sum_rms_norm(base.to(Device::kCUDA), rest.to(Device::kCUDA), res_gpu, weight.to(Device::kCUDA), kEps, out,
                     stream());
    const std::vector<float> got = to_host(out).to_vector();
    ASSERT_EQ(count_nan(got), 0) << "elements left unwritten";
    EXPECT_EQ(testing::mismatches(testing::bf16_bits(to_host(res_gpu)), testing::bf16_bits(rounded_residual)), 0)
        << "residual must be bf16(residual + bf16(bf16(base) + rest))";
    const double err = worst_row_rel_l2(got, want.to_vector(), d);
    testing::record_error("add_sum_rms_norm_worst_row_rel_l2", err);
    EXPECT_LT(err, 4e-3);
  }
};

TEST_F(RmsNormCuda, SmallAddSumNorm) {
  check_add_sum_norm(3, 128, 41);
  check_add_sum_norm(4, 36, 42);  // the one-element path
}

TEST_F(RmsNormCuda, AddSumNormHidden) {
  check_add_sum_norm(1, 7168, 43);
  check_add_sum_norm(1500, 7168, 44);
  check_add_sum_norm(2048, 2048, 45);
}

TEST_F(RmsNormCuda, SmallRows) {
  check_norm(3, 64, DType::kF32, 1);
  check_norm(5, 40, DType::kBF16, 2);
}

TEST_F(RmsNormCuda, SmallWidthNotAMultipleOf8) {
  check_norm(4, 36, DType::kF32, 3);
  check_add_norm(4, 36, DType::kBF16, 4);
}

TEST_F(RmsNormCuda, SmallAddNorm) { check_add_norm(3, 128, DType::kF32, 5); }

TEST_F(RmsNormCuda, V3Hidden) {
  check_norm(1, 7168, DType::kBF16, 11);
  check_norm(2048, 7168, DType::kBF16, 12);
}

TEST_F(RmsNormCuda, V2LiteHiddenF32Weight) { check_norm(1000, 2048, DType::kF32, 13); }

TEST_F(RmsNormCuda, LoraNorms) {
  check_norm(777, 1536, DType::kBF16, 14);  // q_a_layernorm
  check_norm(2048, 512, DType::kBF16, 15);  // kv_a_layernorm
}

TEST_F(RmsNormCuda, AddNormV3Hidden) {
  check_add_norm(1, 7168, DType::kBF16, 21);
  check_add_norm(1500, 7168, DType::kBF16, 22);
}

TEST_F(RmsNormCuda, AddNormV2LiteHidden) { check_add_norm(2048, 2048, DType::kBF16, 23); }

TEST_F(RmsNormCuda, SmallAddNormF32Addend) {
  check_add_norm(3, 128, DType::kF32, 31, DType::kF32);
  check_add_norm(4, 36, DType::kBF16, 32, DType::kF32);  // the one-element path
}

TEST_F(RmsNormCuda, AddNormF32AddendHidden) {
  check_add_norm(1, 7168, DType::kBF16, 33, DType::kF32);
  check_add_norm(1500, 7168, DType::kBF16, 34, DType::kF32);
  check_add_norm(2048, 2048, DType::kBF16, 35, DType::kF32);
}

}  // namespace
}  // namespace mlaserve::ops
