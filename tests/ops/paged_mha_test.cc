// The MHA-layout cache ops (paged_mha_cache.h, paged_mha_decode.h) on the CPU:
//  - write then gather through a shuffled (non-contiguous) block table returns every K/V row
//    exactly (bf16-representable values, f32 and bf16 caches), padding tokens (-1) are not written,
//    bad slots and block ids fail with an error;
//  - paged_mha_decode_cpu equals, per sequence, mha_attention_cpu's causal attention of the new
//    rows over that sequence's K/V gathered into contiguous tensors: an independent path through
//    another op (same fp32 arithmetic, different summation order: 1e-5 relative).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "op_test_util.h"
#include "ops/mha_attention.h"
#include "ops/paged_mha_cache.h"
#include "ops/paged_mha_decode.h"

namespace mlaserve::ops {
namespace {

using testing::expect_all_written;
using testing::i32_tensor;
using testing::max_rel_error;
using testing::poisoned;
using testing::random_tensor;
using testing::to_doubles;

constexpr int64_t kBlock = 64;

std::vector<int32_t> shuffled_blocks(int64_t num_blocks, std::mt19937_64& rng) {
  std::vector<int32_t> blocks(static_cast<size_t>(num_blocks));
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  return blocks;
}

TEST(PagedMhaCache, WriteThenGatherRoundTripsThroughShuffledBlocks) {
  for (DType cache_dtype : {DType::kF32, DType::kBF16}) {
    std::mt19937_64 rng(11);
    const int64_t n = 3, dqk = 8, dv = 4, s = 150, num_blocks = 6;
    Tensor cache = Tensor::zeros({num_blocks, kBlock, n * (dqk + dv)}, cache_dtype);
    const Tensor k = random_tensor({s, n, dqk}, DType::kBF16, rng).to_f32();
    const Tensor v = random_tensor({s, n, dv}, DType::kBF16, rng).to_f32();
    const std::vector<int32_t> table = shuffled_blocks(num_blocks, rng);
    Tensor slots = Tensor::empty({s}, DType::kI64);
    for (int64_t p = 0; p < s; ++p) slots.data<int64_t>()[p] = table[p / kBlock] * kBlock + p % kBlock;
    write_mha_cache_cpu(k, v, slots, cache);
    Tensor gk = poisoned({s, n, dqk}, DType::kF32), gv = poisoned({s, n, dv}, DType::kF32);
    gather_mha_cache_cpu(cache, i32_tensor(table, {num_blocks}), gk, gv);
    EXPECT_EQ(max_rel_error(gk, to_doubles(k)), 0.0);
    EXPECT_EQ(max_rel_error(gv, to_doubles(v)), 0.0);
    expect_all_written(gk);
    expect_all_written(gv);
  }
}

TEST(PagedMhaCache, PaddingIsSkippedAndBadIndicesFail) {
  std::mt19937_64 rng(3);
  const int64_t n = 2, dqk = 4, dv = 4;
  Tensor cache = Tensor::zeros({2, kBlock, n * (dqk + dv)}, DType::kF32);
  const Tensor k = random_tensor({2, n, dqk}, DType::kF32, rng), v = random_tensor({2, n, dv}, DType::kF32, rng);
  write_mha_cache_cpu(k, v, i32_tensor({-1, 5}, {2}), cache);
  const float* c = cache.data<float>();
  for (int64_t slot = 0; slot < 2 * kBlock; ++slot) {
    for (int64_t j = 0; j < n * (dqk + dv); ++j) {
      if (slot != 5) {
        ASSERT_EQ(c[slot * n * (dqk + dv) + j], 0.0f) << "slot " << slot << " written";
      }
    }
  }
  EXPECT_EQ(c[5 * n * (dqk + dv)], k.data<float>()[n * dqk]);  // token 1's first K value
  EXPECT_THROW(write_mha_cache_cpu(k, v, i32_tensor({0, 2 * kBlock}, {2}), cache), Error);
  Tensor gk = Tensor::empty({1, n, dqk}, DType::kF32), gv = Tensor::empty({1, n, dv}, DType::kF32);
  EXPECT_THROW(gather_mha_cache_cpu(cache, i32_tensor({2}, {1}), gk, gv), Error);
  Tensor wide_v = Tensor::empty({2, n, dv + 1}, DType::kF32);
  EXPECT_THROW(write_mha_cache_cpu(k, wide_v, i32_tensor({0, 1}, {2}), cache), Error);
}

// B sequences with the given context lengths and query lengths, K/V written through shuffled
// blocks; paged decode against mha_attention_cpu on the gathered K/V.
void check_decode(int64_t n, int64_t dqk, int64_t dv, const std::vector<int32_t>& seq_lens,
                  const std::vector<int32_t>& q_lens, DType cache_dtype, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t b = static_cast<int64_t>(seq_lens.size());
  int64_t max_blocks = 0, total_blocks = 0;
  for (int32_t len : seq_lens) {
    max_blocks = std::max<int64_t>(max_blocks, (len + kBlock - 1) / kBlock);
    total_blocks += (len + kBlock - 1) / kBlock;
  }
  const std::vector<int32_t> pool = shuffled_blocks(total_blocks + 2, rng);
  Tensor cache = random_tensor({total_blocks + 2, kBlock, n * (dqk + dv)}, cache_dtype, rng);
  std::vector<int32_t> table(static_cast<size_t>(b * max_blocks), 0), starts{0};
  std::vector<Tensor> ks, vs;
  size_t next = 0;
  for (int64_t i = 0; i < b; ++i) {
    const int64_t len = seq_lens[static_cast<size_t>(i)];
    for (int64_t j = 0; j < (len + kBlock - 1) / kBlock; ++j) table[i * max_blocks + j] = pool[next++];
    ks.push_back(random_tensor({len, n, dqk}, DType::kF32, rng));
    vs.push_back(random_tensor({len, n, dv}, DType::kF32, rng));
    Tensor slots = Tensor::empty({len}, DType::kI64);
    for (int64_t p = 0; p < len; ++p) slots.data<int64_t>()[p] = table[i * max_blocks + p / kBlock] * kBlock + p % kBlock;
    write_mha_cache_cpu(ks.back(), vs.back(), slots, cache);
    starts.push_back(starts.back() + q_lens[static_cast<size_t>(i)]);
  }
  const int64_t t = starts.back();
  const Tensor q = random_tensor({t, n, dqk}, DType::kF32, rng);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dqk));
  PagedMhaDecodeArgs args{q, cache, i32_tensor(table, {b, max_blocks}), i32_tensor(seq_lens, {b}),
                          i32_tensor(starts, {b + 1}), scale};
  AttentionState got{poisoned({t, n, dv}, DType::kF32), poisoned({t, n}, DType::kF32)};
  paged_mha_decode_cpu(args, got);
  expect_all_written(got.out);
  expect_all_written(got.lse);

  for (int64_t i = 0; i < b; ++i) {
    const int64_t len = seq_lens[static_cast<size_t>(i)];
    Tensor k = Tensor::empty({len, n, dqk}, DType::kF32), v = Tensor::empty({len, n, dv}, DType::kF32);
    gather_mha_cache_cpu(cache, i32_tensor(std::vector<int32_t>(table.begin() + i * max_blocks,
                                                                table.begin() + (i + 1) * max_blocks),
                                           {max_blocks}),
                         k, v);
    const int64_t r0 = starts[static_cast<size_t>(i)], r1 = starts[static_cast<size_t>(i) + 1];
    AttentionState want{Tensor::empty({r1 - r0, n, dv}, DType::kF32), Tensor::empty({r1 - r0, n}, DType::kF32)};
    mha_attention_cpu(q.slice(r0, r1), k, v, MhaParams{scale, true}, want);
    EXPECT_LE(max_rel_error(got.out.slice(r0, r1), to_doubles(want.out)), 1e-5) << "sequence " << i;
    EXPECT_LE(max_rel_error(got.lse.slice(r0, r1), to_doubles(want.lse)), 1e-5) << "sequence " << i;
  }
}

TEST(PagedMhaDecode, MatchesCausalMhaOverTheGatheredCache) {
  check_decode(2, 192, 128, {1, 65, 200}, {1, 1, 1}, DType::kF32, 1);
  check_decode(3, 16, 8, {4, 70, 129, 5}, {4, 3, 2, 5}, DType::kF32, 2);  // verification chunks, q_len = seq_len
  check_decode(16, 24, 16, {300}, {2}, DType::kBF16, 3);
}

TEST(PagedMhaDecode, RejectsBadInput) {
  std::mt19937_64 rng(5);
  const int64_t n = 2, dqk = 4, dv = 4;
  Tensor cache = random_tensor({2, kBlock, n * (dqk + dv)}, DType::kF32, rng);
  const Tensor q = random_tensor({2, n, dqk}, DType::kF32, rng);
  AttentionState out{Tensor::empty({2, n, dv}, DType::kF32), Tensor::empty({2, n}, DType::kF32)};
  auto run = [&](std::vector<int32_t> table, std::vector<int32_t> lens, std::vector<int32_t> starts) {
    PagedMhaDecodeArgs args{q, cache, i32_tensor(table, {1, static_cast<int64_t>(table.size())}),
                            i32_tensor(lens, {1}), i32_tensor(starts, {2}), 0.5f};
    paged_mha_decode_cpu(args, out);
  };
  EXPECT_NO_THROW(run({1}, {2}, {0, 2}));
  EXPECT_THROW(run({2}, {2}, {0, 2}), Error);         // block id outside the cache
  EXPECT_THROW(run({1}, {1}, {0, 2}), Error);         // seq_len < q_len
  EXPECT_THROW(run({1}, {65}, {0, 2}), Error);        // needs 2 blocks, table has 1
  EXPECT_THROW(run({1}, {2}, {0, 1}), Error);         // query_start does not cover T
}

}  // namespace
}  // namespace mlaserve::ops
