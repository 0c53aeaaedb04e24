// embedding_cuda (through the embedding dispatch) against embedding_cpu: token lookup from a bf16
// table at DeepSeek widths (2048, 7168), the MoE row gather of bf16 activations, every dtype pair,
// i32 and i64 ids. A gather is a copy, so the result must equal the CPU's bit for bit after the
// output dtype's rounding (exact for bf16 -> bf16, f32 -> f32 and bf16 -> f32; round to nearest
// even for f32 -> bf16, as float_to_bf16). Outputs are poisoned (NaN) first.
//
// gather_fp8_rows (through its dispatch) against gather_fp8_rows_cpu: e4m3 codes drawn over all
// 256 byte values (a byte copy: NaN codes pass through too), random f32 scales, each of T tokens
// k times in a random order (the MoE's gather), at V2-Lite's (T 1600, K 2048, k 6) and V3's
// (T 1024, K 7168, k 8) shapes with i32 ids, i64 ids, and small widths that take the 4- and 1-byte
// copies. Outputs poisoned (0xFF) first; every byte must equal the CPU's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/embedding.h"
#include "ops/fp8_block.h"

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

class GatherFp8RowsCuda : public CudaOpTest {
 protected:
  // Bytes of two host tensors that differ.
  static int64_t byte_mismatches(const Tensor& got, const Tensor& want) {
    const auto* a = static_cast<const uint8_t*>(got.raw());
    const auto* b = static_cast<const uint8_t*>(want.raw());
    int64_t n = 0;
    for (size_t i = 0; i < want.nbytes(); ++i) n += a[i] != b[i] ? 1 : 0;
    return n;
  }

  // The rows of t tokens, each k times in a random order, gathered from x_q [t, width] and its
  // scales; ids of id_dtype.
  void check(int64_t t, int64_t width, int64_t k, DType id_dtype, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const int64_t groups = fp8_num_blocks(width), p = t * k;
    Tensor x_q = Tensor::empty({t, width}, DType::kF8E4M3);  // [T, K]: every byte value
    auto* codes = static_cast<uint8_t*>(x_q.raw());
    for (int64_t i = 0; i < t * width; ++i) codes[i] = static_cast<uint8_t>(rng());
    const Tensor x_scales = random_tensor({t, groups}, DType::kF32, rng);  // [T, G]
    std::vector<int64_t> tokens(static_cast<size_t>(p));
    for (int64_t i = 0; i < p; ++i) tokens[i] = i / k;
    std::shuffle(tokens.begin(), tokens.end(), rng);
    Tensor ids = Tensor::empty({p}, id_dtype);  // [P]
    for (int64_t i = 0; i < p; ++i) {
      if (id_dtype == DType::kI32) {
        ids.data<int32_t>()[i] = static_cast<int32_t>(tokens[i]);
      } else {
        ids.data<int64_t>()[i] = tokens[i];
      }
    }
    Tensor want_q = Tensor::empty({p, width}, DType::kF8E4M3), want_scales = Tensor::empty({p, groups}, DType::kF32);
    gather_fp8_rows_cpu(ids, x_q, x_scales, want_q, want_scales);

    Tensor out_q = poisoned_gpu({p, width}, DType::kF8E4M3), out_scales = poisoned_gpu({p, groups}, DType::kF32);
    gather_fp8_rows(ids.to(Device::kCUDA), x_q.to(Device::kCUDA), x_scales.to(Device::kCUDA), out_q, out_scales,
                    stream());
    EXPECT_EQ(byte_mismatches(to_host(out_q), want_q), 0) << "codes, of " << want_q.nbytes() << " bytes";
    EXPECT_EQ(byte_mismatches(to_host(out_scales), want_scales), 0) << "scales, of " << want_scales.nbytes();
  }
};

TEST_F(GatherFp8RowsCuda, V2LitePrefill) { check(1600, 2048, 6, DType::kI32, 31); }

TEST_F(GatherFp8RowsCuda, V3Prefill) { check(1024, 7168, 8, DType::kI32, 32); }

TEST_F(GatherFp8RowsCuda, V2LiteI64Ids) { check(300, 2048, 6, DType::kI64, 33); }

// 16-byte copies (K 512, G 4); 4-byte ones (K 256: G = 2 is not a multiple of 4; K 36); 1-byte
// ones (K 130, K 7).
TEST_F(GatherFp8RowsCuda, SmallEveryCopyWidth) {
  uint64_t seed = 40;
  for (const int64_t width : {512, 256, 36, 130, 7}) {
    SCOPED_TRACE("K " + std::to_string(width));
    check(9, width, 3, DType::kI32, seed++);
    check(9, width, 3, DType::kI64, seed++);
  }
}

TEST_F(GatherFp8RowsCuda, SmallOneRow) { check(1, 2048, 1, DType::kI32, 50); }

// An id outside [0, T) gives a zero row of codes and of scales (the kernel reads nothing there).
TEST_F(GatherFp8RowsCuda, SmallOutOfRangeIdsWriteZeroRows) {
  constexpr int64_t kT = 4, kWidth = 256, kGroups = 2;
  Tensor x_q = Tensor::empty({kT, kWidth}, DType::kF8E4M3);
  std::memset(x_q.raw(), 0x3C, x_q.nbytes());
  Tensor x_scales = Tensor::empty({kT, kGroups}, DType::kF32);
  std::fill_n(x_scales.data<float>(), kT * kGroups, 0.5f);
  const Tensor ids = testing::i32_tensor({2, -1, kT, 1 << 30}, {4});
  Tensor out_q = poisoned_gpu({4, kWidth}, DType::kF8E4M3), out_scales = poisoned_gpu({4, kGroups}, DType::kF32);
  gather_fp8_rows(ids.to(Device::kCUDA), x_q.to(Device::kCUDA), x_scales.to(Device::kCUDA), out_q, out_scales,
                  stream());
  const Tensor got_q = to_host(out_q), got_scales = to_host(out_scales);
  const auto* codes = static_cast<const uint8_t*>(got_q.raw());
  for (int64_t r = 0; r < 4; ++r) {
    const uint8_t want = r == 0 ? 0x3C : 0;
    EXPECT_EQ(std::count(codes + r * kWidth, codes + (r + 1) * kWidth, want), kWidth) << "row " << r;
    for (int64_t g = 0; g < kGroups; ++g) EXPECT_EQ(got_scales.data<float>()[r * kGroups + g], r == 0 ? 0.5f : 0.0f);
  }
}

}  // namespace
}  // namespace mlaserve::ops
