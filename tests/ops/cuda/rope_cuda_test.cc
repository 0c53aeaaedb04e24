// apply_rope_interleaved_cuda (through the dispatch) against apply_rope_interleaved_cpu, with
// V3's YaRN table (factor 40, positions up to 8192): q [T, n, 192] rotated on channels 128..191
// for 16 and 128 heads, k_pe [T, 64] on channels 0..63, i32 and i64 positions.
//
// Tolerance, per element: both sides rotate the same bf16 inputs with the same fp32 table; the
// GPU may fuse a multiply-add (a few fp32 ulps of |x0| + |x1|) and rounds once to bf16 (relative
// error <= 2^-8, bf16's unit roundoff). So |got - want| <= 2^-8 |want| + 1e-6 (|x0| + |x1|)
// must hold everywhere, and channels outside the rotated range must keep their exact bits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/rope.h"

namespace mlaserve::ops {
namespace {

using testing::CudaOpTest;
using testing::random_tensor;

class RopeCuda : public CudaOpTest {
 protected:
  // x of `shape` ([T, n, row] or [T, row]); table of `positions` rows for params.
  void check(const Shape& shape, int64_t offset, const RopeParams& params, int64_t positions, DType pos_dtype,
             uint64_t seed) {
    std::mt19937_64 rng(seed);
    Tensor table = Tensor::empty({positions, params.rotary_dim}, DType::kF32);
    build_rope_cos_sin_cpu(params, table);
    const Tensor x = random_tensor(shape, DType::kBF16, rng, 2.0f);
    const int64_t t = shape[0], row = shape.back(), dr = params.rotary_dim;
    std::uniform_int_distribution<int64_t> pick(0, positions - 1);
    Tensor pos = Tensor::empty({t}, pos_dtype);
    for (int64_t i = 0; i < t; ++i) {
      const int64_t p = i == 0 ? positions - 1 : pick(rng);  // the table's last row is used
      if (pos_dtype == DType::kI32) {
        pos.data<int32_t>()[i] = static_cast<int32_t>(p);
      } else {
        pos.data<int64_t>()[i] = p;
      }
    }
    Tensor want = x.to_f32();
    apply_rope_interleaved_cpu(want, pos, table, offset);

    Tensor x_gpu = x.to(Device::kCUDA);
    apply_rope_interleaved(x_gpu, pos.to(Device::kCUDA), table.to(Device::kCUDA), offset, stream());
    const std::vector<float> got = to_host(x_gpu).to_vector();
    const std::vector<float> in = x.to_vector(), expect = want.to_vector();
    int64_t bad = 0, changed_outside = 0;
    double worst = 0.0;
    for (size_t i = 0; i < got.size(); ++i) {
      const int64_t c = static_cast<int64_t>(i) % row;
      if (c < offset || c >= offset + dr) {
        changed_outside += got[i] != in[i] ? 1 : 0;
        continue;
      }
      const size_t pair = i - (c - offset) % 2;
      const double bound = std::ldexp(std::abs(expect[i]), -8) + 1e-6 * (std::abs(in[pair]) + std::abs(in[pair + 1]));
      const double err = std::abs(static_cast<double>(got[i]) - expect[i]);
      bad += !(err <= bound) ? 1 : 0;
      worst = std::max(worst, err / std::max<double>(std::abs(expect[i]), 1e-3));
    }
    testing::record_error("rope_worst_rel_error", worst);
    EXPECT_EQ(changed_outside, 0) << "channels outside the rotated range changed";
    EXPECT_EQ(bad, 0) << "elements off by more than bf16 rounding";
  }
};

TEST_F(RopeCuda, SmallHeadsWithOffset) {
  RopeParams p;
  p.rotary_dim = 16;
  check({5, 3, 24}, 8, p, 40, DType::kI32, 1);
}

TEST_F(RopeCuda, SmallTwoDimensionalI64Positions) { check({7, 64}, 0, testing::deepseek_yarn(), 100, DType::kI64, 2); }

TEST_F(RopeCuda, SmallOutOfRangePositionZeroesRotatedChannels) {
  RopeParams p;
  p.rotary_dim = 8;
  Tensor table = Tensor::empty({4, 8}, DType::kF32);
  build_rope_cos_sin_cpu(p, table);
  std::mt19937_64 rng(3);
  const Tensor x = random_tensor({2, 12}, DType::kBF16, rng);
  Tensor x_gpu = x.to(Device::kCUDA);
  apply_rope_interleaved(x_gpu, testing::i32_tensor({1, 4}, {2}).to(Device::kCUDA), table.to(Device::kCUDA), 2,
                         stream());
  const std::vector<float> got = to_host(x_gpu).to_vector(), in = x.to_vector();
  for (int64_t c = 0; c < 12; ++c) {
    if (c >= 2 && c < 10) {
      EXPECT_EQ(got[12 + c], 0.0f) << "channel " << c << " of the token at position 4 (table has 4 rows)";
    } else {
      EXPECT_EQ(got[12 + c], in[12 + c]);
    }
  }
}

TEST_F(RopeCuda, QueryRope16Heads) { check({2048, 16, 192}, 128, testing::deepseek_yarn(), 8192, DType::kI32, 11); }

TEST_F(RopeCuda, QueryRope128Heads) { check({300, 128, 192}, 128, testing::deepseek_yarn(), 8192, DType::kI32, 12); }

TEST_F(RopeCuda, KeyRope) {
  check({1, 64}, 0, testing::deepseek_yarn(), 8192, DType::kI32, 13);
  check({4000, 64}, 0, testing::deepseek_yarn(), 8192, DType::kI64, 14);
}

}  // namespace
}  // namespace mlaserve::ops
