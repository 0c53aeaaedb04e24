// The MHA-layout cache ops on the GPU (paged_mha_cache.h, paged_mha_decode.h) against their CPU
// references, at V2-Lite's and V3's head counts (16, 128: rows of 5120 and 40960 channels).
//
// write / gather: copies, so the whole cache (untouched rows start random) and the gathered
// K/V must equal the CPU's bit for bit; shuffled slots with padding (-1), i32 and i64 slot
// mappings, shuffled block tables; gather outputs poisoned (NaN) first.
//
// decode: contexts 1 .. 32768 tokens through shuffled (non-contiguous) block tables, 1-4 query
// rows per sequence (decode, speculative verification) and longer chunks (taken 4 rows at a
// time), batches from 1 (split over the context) to 64 sequences of mixed lengths; outputs
// poisoned first. Thresholds: q and the cache are the same bf16 values on both sides and both
// accumulate in fp32, so the GPU's error is the one rounding of out to bf16 (2^-9 relative per
// element, ~1.1e-3 rms) plus fp32 reordering (~1e-6): worst row rel L2 < 4e-3; lse is fp32 on both
// sides: |error| < 1e-3 (lse ~ 10, fp32 sums of <= 32k terms reordered: ~1e-5).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/paged_mha_cache.h"
#include "ops/paged_mha_decode.h"
#include "ops/random_fill.h"

namespace mlaserve::ops {
namespace {

using testing::bf16_bits;
using testing::count_nan;
using testing::CudaOpTest;
using testing::mismatches;
using testing::poisoned_gpu;
using testing::random_tensor;
using testing::worst_row_rel_l2;

constexpr int64_t kBlock = 64, kDqk = 192, kDv = 128;

// Uniform values in [-half_width, half_width] filled on the GPU (fast at 2.7 GB), and its host copy.
Tensor uniform_gpu(const Shape& shape, uint64_t seed, float half_width) {
  Tensor t = Tensor::empty(shape, DType::kBF16, Device::kCUDA);
  fill_uniform(UniformFill{seed, half_width, 0.0f}, t);
  return t;
}

class PagedMhaCuda : public CudaOpTest {
 protected:
  void check_write(int64_t t, int64_t n, int64_t num_blocks, DType slot_dtype, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const Tensor cache = uniform_gpu({num_blocks, kBlock, n * (kDqk + kDv)}, seed, 1.0f).to(Device::kCPU);
    const Tensor k = random_tensor({t, n, kDqk}, DType::kBF16, rng), v = random_tensor({t, n, kDv}, DType::kBF16, rng);
    const Tensor slots = testing::random_slot_mapping(t, num_blocks * kBlock, slot_dtype, rng);
    Tensor want = cache.clone();
    write_mha_cache_cpu(k.to_f32(), v.to_f32(), slots, want);
    Tensor got = cache.to(Device::kCUDA);
    write_mha_cache(k.to(Device::kCUDA), v.to(Device::kCUDA), slots.to(Device::kCUDA), got, stream());
    EXPECT_EQ(mismatches(bf16_bits(to_host(got)), bf16_bits(want)), 0) << "cache elements differ from the CPU's";
  }

  void check_gather(int64_t s, int64_t n, int64_t num_blocks, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const Tensor cache_gpu = uniform_gpu({num_blocks, kBlock, n * (kDqk + kDv)}, seed, 1.0f);
    const Tensor cache = cache_gpu.to(Device::kCPU);
    std::vector<int32_t> blocks(static_cast<size_t>(num_blocks));
    std::iota(blocks.begin(), blocks.end(), 0);
    std::shuffle(blocks.begin(), blocks.end(), rng);
    blocks.resize(static_cast<size_t>((s + kBlock - 1) / kBlock + 1));  // a spare entry
    const Tensor table = testing::i32_tensor(blocks, {static_cast<int64_t>(blocks.size())});
    Tensor want_k = Tensor::empty({s, n, kDqk}, DType::kF32), want_v = Tensor::empty({s, n, kDv}, DType::kF32);
    gather_mha_cache_cpu(cache, table, want_k, want_v);
    Tensor k = poisoned_gpu({s, n, kDqk}, DType::kBF16), v = poisoned_gpu({s, n, kDv}, DType::kBF16);
    gather_mha_cache(cache_gpu, table.to(Device::kCUDA), k, v, stream());
    const std::vector<float> got_k = to_host(k).to_vector(), got_v = to_host(v).to_vector();
    ASSERT_EQ(count_nan(got_k) + count_nan(got_v), 0) << "rows left unwritten";
    EXPECT_EQ(mismatches(got_k, want_k.to_vector()), 0);
    EXPECT_EQ(mismatches(got_v, want_v.to_vector()), 0);
  }

  // Sequences of the given lengths (new tokens included) and query rows, blocks shuffled over a
  // cache with spare blocks.
  void check_decode(int64_t n, const std::vector<int32_t>& seq_lens, const std::vector<int32_t>& q_lens,
                    uint64_t seed) {
    std::mt19937_64 rng(seed);
    const auto b = static_cast<int64_t>(seq_lens.size());
    int64_t max_blocks = 0, total = 0;
    for (int32_t len : seq_lens) {
      max_blocks = std::max<int64_t>(max_blocks, (len + kBlock - 1) / kBlock);
      total += (len + kBlock - 1) / kBlock;
    }
    const int64_t num_blocks = total + 3;
    std::vector<int32_t> pool(static_cast<size_t>(num_blocks));
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), rng);
    std::vector<int32_t> table(static_cast<size_t>(b * max_blocks), 0), starts{0};
    size_t next = 0;
    for (int64_t i = 0; i < b; ++i) {
      for (int64_t j = 0; j < (seq_lens[static_cast<size_t>(i)] + kBlock - 1) / kBlock; ++j) {
        table[static_cast<size_t>(i * max_blocks + j)] = pool[next++];
      }
      starts.push_back(starts.back() + q_lens[static_cast<size_t>(i)]);
    }
    const int64_t t = starts.back();
    const Tensor cache_gpu = uniform_gpu({num_blocks, kBlock, n * (kDqk + kDv)}, seed, 1.0f);
    const Tensor q_gpu = uniform_gpu({t, n, kDqk}, seed + 1, 4.0f);
    const float scale = 0.1147f;  // V3's (dn + dr)^-1/2 · mscale²
    const Tensor table_t = testing::i32_tensor(table, {b, max_blocks}), lens_t = testing::i32_tensor(seq_lens, {b});
    const Tensor starts_t = testing::i32_tensor(starts, {b + 1});

    AttentionState want{Tensor::empty({t, n, kDv}, DType::kF32), Tensor::empty({t, n}, DType::kF32)};
    paged_mha_decode_cpu(PagedMhaDecodeArgs{q_gpu.to(Device::kCPU), cache_gpu.to(Device::kCPU), table_t, lens_t,
                                            starts_t, scale},
                         want);
    AttentionState got{poisoned_gpu({t, n, kDv}, DType::kBF16), poisoned_gpu({t, n}, DType::kF32)};
    paged_mha_decode(PagedMhaDecodeArgs{q_gpu, cache_gpu, table_t.to(Device::kCUDA), lens_t.to(Device::kCUDA),
                                        starts_t.to(Device::kCUDA), scale},
                     got, stream());
    const std::vector<float> out = to_host(got.out).to_vector(), lse = to_host(got.lse).to_vector();
    ASSERT_EQ(count_nan(out) + count_nan(lse), 0) << "outputs left unwritten";
    const double err = worst_row_rel_l2(out, want.out.to_vector(), kDv);
    testing::record_error("worst_row_rel_l2", err);
    EXPECT_LT(err, 4e-3);
    const std::vector<float> want_lse = want.lse.to_vector();
    double lse_err = 0.0;
    for (size_t i = 0; i < lse.size(); ++i) lse_err = std::max(lse_err, std::fabs(double(lse[i]) - want_lse[i]));
    EXPECT_LT(lse_err, 1e-3);
  }
};

TEST_F(PagedMhaCuda, SmallWrite) {
  check_write(9, 16, 3, DType::kI64, 1);
  check_write(9, 2, 3, DType::kI32, 2);
}

TEST_F(PagedMhaCuda, SmallGather) { check_gather(70, 16, 4, 3); }

TEST_F(PagedMhaCuda, SmallDecode) {
  check_decode(16, {1, 70}, {1, 1}, 4);      // splits over the context (2 sequences)
  check_decode(2, {5, 33}, {4, 3}, 5);       // tiny models' 2 heads, verification rows
  check_decode(16, {9}, {9}, 6);             // a 9-row chunk: query groups of 4
}

TEST_F(PagedMhaCuda, SmallIndicesOutsideTheCacheAreNotFollowed) {
  const int64_t n = 2, row = n * (kDqk + kDv);
  const Tensor cache = uniform_gpu({2, kBlock, row}, 9, 1.0f);
  std::mt19937_64 rng(9);
  const Tensor k = random_tensor({3, n, kDqk}, DType::kBF16, rng), v = random_tensor({3, n, kDv}, DType::kBF16, rng);
  Tensor got = cache.clone();
  write_mha_cache(k.to(Device::kCUDA), v.to(Device::kCUDA),
                  testing::i32_tensor({2 * kBlock, -7, 1 << 30}, {3}).to(Device::kCUDA), got, stream());
  EXPECT_EQ(mismatches(bf16_bits(to_host(got)), bf16_bits(cache.to(Device::kCPU))), 0)
      << "a write outside the cache landed";
  Tensor gk = poisoned_gpu({128, n, kDqk}, DType::kBF16), gv = poisoned_gpu({128, n, kDv}, DType::kBF16);
  gather_mha_cache(cache, testing::i32_tensor({1, 2}, {2}).to(Device::kCUDA), gk, gv, stream());
  const std::vector<float> got_k = to_host(gk).to_vector(), rows = cache.to(Device::kCPU).to_vector();
  for (int64_t p = 0; p < 128; p += 37) {
    const float want = p < kBlock ? rows[(kBlock + p) * row] : 0.0f;  // block 1, then block id 2: zeros
    EXPECT_EQ(got_k[p * n * kDqk], want) << "position " << p;
  }
}

TEST_F(PagedMhaCuda, WritePrefillChunkV2Lite) { check_write(4096, 16, 80, DType::kI64, 11); }
TEST_F(PagedMhaCuda, WriteDecodeBatchV3) { check_write(128, 128, 4, DType::kI32, 12); }
TEST_F(PagedMhaCuda, GatherLongContextV2Lite) { check_gather(4000, 16, 70, 13); }
TEST_F(PagedMhaCuda, GatherV3) { check_gather(1000, 128, 20, 14); }

TEST_F(PagedMhaCuda, DecodeV2LiteSingleSequenceContexts) {
  for (int32_t len : {1, 63, 64, 65, 1000, 4097}) {
    SCOPED_TRACE(len);
    check_decode(16, {len}, {1}, 20 + static_cast<uint64_t>(len));
  }
}

TEST_F(PagedMhaCuda, DecodeV2Lite32kContextWithVerificationRows) { check_decode(16, {32768, 20000}, {1, 4}, 30); }

TEST_F(PagedMhaCuda, DecodeV2LiteBatch64MixedLengths) {
  std::mt19937_64 rng(31);
  std::vector<int32_t> lens, q_lens;
  for (int i = 0; i < 64; ++i) {
    q_lens.push_back(1 + static_cast<int32_t>(rng() % 4));
    lens.push_back(q_lens.back() + static_cast<int32_t>(rng() % 3000));
  }
  check_decode(16, lens, q_lens, 32);
}

TEST_F(PagedMhaCuda, DecodeV3Contexts) {
  check_decode(128, {1}, {1}, 40);
  check_decode(128, {2000, 7}, {2, 1}, 41);
  check_decode(128, {8192}, {1}, 42);
}

TEST_F(PagedMhaCuda, DecodeV3Batch16) {
  std::vector<int32_t> lens, q_lens;
  for (int i = 0; i < 16; ++i) {
    lens.push_back(100 + 131 * i);
    q_lens.push_back(1);
  }
  check_decode(128, lens, q_lens, 43);
}

}  // namespace
}  // namespace mlaserve::ops
