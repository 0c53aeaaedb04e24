// silu_mul_cuda (through the dispatch) against silu_mul_cpu, both layouts, at DeepSeek's MLP
// widths: V3 routed experts and shared expert I = 2048, V3 dense I = 18432, V2-Lite experts
// I = 1408 and dense 10944; T from 1 to 4096.
//
// Tolerance, per element: same bf16 inputs on both sides; the GPU's expf is within 2 ulp of
// glibc's, so the fp32 results agree to ~1e-6 relative, and the output is rounded once to bf16
// (relative error <= u / (1 + u), u = 2^-8 bf16's unit roundoff). |got - want| <= 2^-8 |want|
// + 1e-30 must hold everywhere: the fp32 difference (~1e-6) fits in the u² = 1.5e-5 slack.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/silu_mul.h"

namespace mlaserve::ops {
namespace {

using testing::count_nan;
using testing::CudaOpTest;
using testing::poisoned_gpu;
using testing::random_tensor;

void expect_close(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  ASSERT_EQ(count_nan(got), 0) << "elements left unwritten";
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    bad += !(std::abs(got[i] - want[i]) <= std::ldexp(std::abs(want[i]), -8) + 1e-30f) ? 1 : 0;
  }
  EXPECT_EQ(bad, 0) << "of " << got.size() << " elements off by more than bf16 rounding";
}

class SiluMulCuda : public CudaOpTest {
 protected:
  void check_fused(int64_t t, int64_t width, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const Tensor gate_up = random_tensor({t, 2 * width}, DType::kBF16, rng, 3.0f);
    Tensor want = Tensor::empty({t, width}, DType::kF32);
    silu_mul_cpu(gate_up.to_f32(), want);
    Tensor out = poisoned_gpu({t, width}, DType::kBF16);
    silu_mul(gate_up.to(Device::kCUDA), out, stream());
    expect_close(to_host(out).to_vector(), want.to_vector());
  }

  void check_separate(int64_t t, int64_t width, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const Tensor gate = random_tensor({t, width}, DType::kBF16, rng, 3.0f);
    const Tensor up = random_tensor({t, width}, DType::kBF16, rng, 3.0f);
    Tensor want = Tensor::empty({t, width}, DType::kF32);
    silu_mul_cpu(gate.to_f32(), up.to_f32(), want);
    Tensor out = poisoned_gpu({t, width}, DType::kBF16);
    silu_mul(gate.to(Device::kCUDA), up.to(Device::kCUDA), out, stream());
    expect_close(to_host(out).to_vector(), want.to_vector());
  }
};

TEST_F(SiluMulCuda, SmallBothLayouts) {
  check_fused(3, 64, 1);
  check_separate(3, 64, 2);
}

TEST_F(SiluMulCuda, SmallWidthNotAMultipleOf8) {
  check_fused(5, 12, 3);
  check_separate(5, 12, 4);
}

TEST_F(SiluMulCuda, V3ExpertWidth) {
  check_fused(1, 2048, 11);
  check_fused(4096, 2048, 12);
}

TEST_F(SiluMulCuda, V3DenseWidth) { check_fused(300, 18432, 13); }

TEST_F(SiluMulCuda, V2LiteWidths) {
  check_fused(2000, 1408, 14);
  check_separate(100, 10944, 15);
}

}  // namespace
}  // namespace mlaserve::ops
