// silu_mul_cuda (through the dispatch) against silu_mul_cpu, both layouts, at DeepSeek's MLP
// widths: V3 routed experts and shared expert I = 2048, V3 dense I = 18432, V2-Lite experts
// I = 1408 and dense 10944; T from 1 to 4096. silu_mul_rows_cuda (the fused layout over the rows
// [offsets[0], offsets[E]) read on the device, the MoE experts' split SwiGLU) with the same bound
// on those rows, every other row left as poisoned, offsets outside [0, T] clamped.
//
// Tolerance, per element: same bf16 inputs on both sides; the GPU's expf is within 2 ulp of
// glibc's, so the fp32 results agree to ~1e-6 relative, and the output is rounded once to bf16
// (relative error <= u / (1 + u), u = 2^-8 bf16's unit roundoff). |got - want| <= 2^-8 |want|
// + 1e-30 must hold everywhere: the fp32 difference (~1e-6) fits in the u² = 1.5e-5 slack.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/silu_mul.h"

namespace mlaserve::ops {
namespace {

using testing::count_nan;
using testing::CudaOpTest;
using testing::i32_tensor;
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

  // silu_mul_rows_cuda with expert offsets [E + 1] (host values, copied to the GPU).
  void check_rows(int64_t t, int64_t width, const std::vector<int32_t>& offsets, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const Tensor gate_up = random_tensor({t, 2 * width}, DType::kBF16, rng, 3.0f);
    Tensor want = Tensor::empty({t, width}, DType::kF32);
    silu_mul_cpu(gate_up.to_f32(), want);
    const auto experts = static_cast<int64_t>(offsets.size()) - 1;
    const Tensor off = i32_tensor(offsets, {experts + 1}).to(Device::kCUDA);
    Tensor out = poisoned_gpu({t, width}, DType::kBF16);
    silu_mul_rows_cuda(gate_up.to(Device::kCUDA), off, out, cuda_stream());
    const Tensor got = to_host(out);
    const int64_t first = std::clamp<int64_t>(offsets.front(), 0, t);
    const int64_t end = std::max(first, std::clamp<int64_t>(offsets.back(), 0, t));
    if (end > first) expect_close(got.slice(first, end).to_vector(), want.slice(first, end).to_vector());
    const auto* bits = static_cast<const uint16_t*>(got.raw());
    int64_t touched = 0;  // elements of rows outside [first, end) that are not poison (0xFFFF)
    for (int64_t i = 0; i < t * width; ++i) {
      const int64_t r = i / width;
      touched += (r < first || r >= end) && bits[i] != 0xFFFF ? 1 : 0;
    }
    EXPECT_EQ(touched, 0) << "rows outside [" << first << ", " << end << ") were written";
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

// A share of the rows in the middle, all rows, one row, none, offsets past both ends (clamped);
// widths with and without the 8-element vectors.
TEST_F(SiluMulCuda, SmallRowRange) {
  check_rows(40, 64, {5, 9, 9, 30}, 21);
  check_rows(40, 64, {0, 40}, 22);
  check_rows(40, 12, {39, 40}, 23);
  check_rows(40, 64, {17, 17, 17}, 24);
  check_rows(40, 64, {-3, 10, 55}, 25);
  check_rows(40, 12, {12, 3, 31}, 26);
}

// The MoE experts' split SwiGLU at V2-Lite's width (P = 9600 rows, Im = 1408), a rank's share.
TEST_F(SiluMulCuda, V2LiteExpertRowRange) { check_rows(9600, 1408, {2400, 5000, 7200}, 27); }

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
