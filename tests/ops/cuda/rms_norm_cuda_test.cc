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
// <= 7.8e-3).
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

  void check_add_norm(int64_t t, int64_t d, DType weight_dtype, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const Tensor x = random_tensor({t, d}, DType::kBF16, rng, 2.0f);
    const Tensor residual = random_tensor({t, d}, DType::kBF16, rng, 8.0f);
    const Tensor weight = random_tensor({d}, weight_dtype, rng, 0.5f);

    Tensor cpu_residual = residual.to_f32();
    Tensor cpu_out = Tensor::empty({t, d}, DType::kF32);
    add_rms_norm_cpu(x.to_f32(), cpu_residual, weight.to_f32(), kEps, cpu_out);
    const Tensor rounded_residual = cpu_residual.to_dtype(DType::kBF16);  // the bf16 residual stream
    Tensor want = Tensor::empty({t, d}, DType::kF32);
    rms_norm_cpu(rounded_residual.to_f32(), weight.to_f32(), kEps, want);

    Tensor res_gpu = residual.to(Device::kCUDA);
    Tensor out = poisoned_gpu({t, d}, DType::kBF16);
    add_rms_norm(x.to(Device::kCUDA), res_gpu, weight.to(Device::kCUDA), kEps, out, stream());
    const std::vector<float> got = to_host(out).to_vector();
    ASSERT_EQ(count_nan(got), 0) << "elements left unwritten";
    EXPECT_EQ(testing::mismatches(testing::bf16_bits(to_host(res_gpu)), testing::bf16_bits(rounded_residual)), 0)
        << "residual must be bf16(residual + x)";
    const double err = worst_row_rel_l2(got, want.to_vector(), d);
    const double err_fp32_residual = worst_row_rel_l2(got, cpu_out.to_vector(), d);
    testing::record_error("add_rms_norm_worst_row_rel_l2", err);
    testing::record_error("add_rms_norm_vs_fp32_residual", err_fp32_residual);
    EXPECT_LT(err, 4e-3);
    EXPECT_LT(err_fp32_residual, 1e-2);
  }
};

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

}  // namespace
}  // namespace mlaserve::ops
