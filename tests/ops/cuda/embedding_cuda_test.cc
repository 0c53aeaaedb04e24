// embedding_cuda (through the embedding dispatch) against embedding_cpu: token lookup from a bf16
// table at DeepSeek widths (2048, 7168), the MoE row gather of bf16 activations, every dtype pair,
// i32 and i64 ids. A gather is a copy, so the result must equal the CPU's bit for bit after the
// output dtype's rounding (exact for bf16 -> bf16, f32 -> f32 and bf16 -> f32; round to nearest
// even for f32 -> bf16, as float_to_bf16). Outputs are poisoned (NaN) first.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/embedding.h"

namespace mlaserve::ops {
namespace {

using testing::count_nan;
using testing::CudaOpTest;
using testing::poisoned_gpu;
using testing::random_tensor;

class EmbeddingCuda : public CudaOpTest {
 protected:
  // t ids drawn uniformly from [0, v) into a random [v, h] table.
  void check(int64_t v, int64_t h, int64_t t, DType table_dtype, DType out_dtype, DType id_dtype, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const Tensor table = random_tensor({v, h}, table_dtype, rng);
    std::uniform_int_distribution<int64_t> pick(0, v - 1);
    Tensor ids = Tensor::empty({t}, id_dtype);
    for (int64_t i = 0; i < t; ++i) {
      if (id_dtype == DType::kI32) {
        ids.data<int32_t>()[i] = static_cast<int32_t>(pick(rng));
      } else {
        ids.data<int64_t>()[i] = pick(rng);
      }
    }
    Tensor want = Tensor::empty({t, h}, DType::kF32);
    embedding_cpu(ids, table.to_f32(), want);

    Tensor out = poisoned_gpu({t, h}, out_dtype);
    embedding(ids.to(Device::kCUDA), table.to(Device::kCUDA), out, stream());
    const std::vector<float> got = to_host(out).to_vector();
    const std::vector<float> expect = want.to_dtype(out_dtype).to_vector();  // the output dtype's rounding
    ASSERT_EQ(count_nan(got), 0) << "rows left unwritten";
    EXPECT_EQ(testing::mismatches(got, expect), 0) << "of " << got.size() << " elements";
  }
};

TEST_F(EmbeddingCuda, SmallEveryDtypePair) {
  const DType floats[] = {DType::kBF16, DType::kF32};
  uint64_t seed = 1;
  for (DType table : floats) {
    for (DType out : floats) {
      check(50, 64, 9, table, out, DType::kI32, seed++);
      check(50, 64, 9, table, out, DType::kI64, seed++);
    }
  }
}

TEST_F(EmbeddingCuda, SmallWidthNotAMultipleOf8) { check(20, 36, 7, DType::kF32, DType::kBF16, DType::kI32, 11); }

TEST_F(EmbeddingCuda, SmallOutOfRangeIdsWriteZeroRows) {
  std::mt19937_64 rng(12);
  const Tensor table = random_tensor({10, 16}, DType::kBF16, rng);
  const Tensor ids = testing::i32_tensor({3, -1, 10, 9, 1 << 30}, {5});
  Tensor out = poisoned_gpu({5, 16}, DType::kBF16);
  embedding(ids.to(Device::kCUDA), table.to(Device::kCUDA), out, stream());
  const std::vector<float> got = to_host(out).to_vector();
  const std::vector<float> rows = table.to_vector();
  for (int64_t c = 0; c < 16; ++c) {
    EXPECT_EQ(got[c], rows[3 * 16 + c]);
    EXPECT_EQ(got[16 + c], 0.0f) << "id -1";
    EXPECT_EQ(got[32 + c], 0.0f) << "id V";
    EXPECT_EQ(got[48 + c], rows[9 * 16 + c]);
    EXPECT_EQ(got[64 + c], 0.0f) << "id 2^30";
  }
}

TEST_F(EmbeddingCuda, TokenLookupV3Hidden) { check(4096, 7168, 2048, DType::kBF16, DType::kBF16, DType::kI32, 21); }

TEST_F(EmbeddingCuda, TokenLookupV2LiteHiddenI64) {
  check(8192, 2048, 3000, DType::kBF16, DType::kBF16, DType::kI64, 22);
}

TEST_F(EmbeddingCuda, DecodeBatchOneToken) { check(4096, 7168, 1, DType::kBF16, DType::kBF16, DType::kI32, 23); }

// The MoE gather: T·k rows of a [T, H] bf16 activation, each token k times, in expert order.
TEST_F(EmbeddingCuda, MoeRowGatherOfActivations) { check(512, 7168, 512 * 8, DType::kBF16, DType::kBF16, DType::kI32, 24); }

TEST_F(EmbeddingCuda, F32TableToBf16Activations) { check(1000, 2048, 700, DType::kF32, DType::kBF16, DType::kI32, 25); }

}  // namespace
}  // namespace mlaserve::ops
