// Which sm90 MLA decode kernel a step uses (use_partitioned_kernels, use_ring_kernel,
// decode_kernel: mla_decode_sm90_heuristics.h), and how its KV copies use L2
// (use_kv_evict_first).
// Host arithmetic only, so it runs without a GPU; the GPU tests check every kernel at every batch.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>

#include "ops/cuda/mla_decode_sm90_heuristics.h"
#include "ops/mla_decode.h"

namespace mlaserve::ops::sm90 {
namespace {

TEST(MlaDecodeKernelRule, SplitSBelowEightAndInTheMiddleBandAtSixteenRows) {
  // Sequences known to be at most kSplitSMaxSeqLen tokens, or of unknown length (0).
  for (const int64_t len : {int64_t{0}, int64_t{1}, kSplitSMaxSeqLen}) {
    for (int64_t b : {1, 2, 4, 7}) EXPECT_FALSE(use_partitioned_kernels(b, 16, len)) << b;
    for (int64_t b : {8, 16, 24, 32}) EXPECT_TRUE(use_partitioned_kernels(b, 16, len)) << b;
    for (int64_t b : {33, 48, 64, 80}) EXPECT_FALSE(use_partitioned_kernels(b, 16, len)) << b;
    for (int64_t b : {81, 96, 112, 128, 256}) EXPECT_TRUE(use_partitioned_kernels(b, 16, len)) << b;
  }
}

TEST(MlaDecodeKernelRule, LongerSequencesLeaveTheBandToTheRingKernel) {
  for (const int64_t len : {kSplitSMaxSeqLen + 1, int64_t{32768}}) {
    for (int64_t b : {1, 2, 4, 7}) EXPECT_FALSE(use_partitioned_kernels(b, 16, len)) << b;
    for (int64_t b : {8, 33, 48, 64, 80, 81, 128}) EXPECT_TRUE(use_partitioned_kernels(b, 16, len)) << b;
  }
}

TEST(MlaDecodeKernelRule, TheLengthBoundMattersOnlyInTheBand) {
  // What the decode graphs key their length classes on (DeepSeekModel::decode_seq_len_class).
  for (int64_t b : {33, 48, 64, 80}) EXPECT_TRUE(mla_decode_kernel_depends_on_length(b, 16)) << b;
  for (int64_t b : {1, 7, 8, 32, 81, 128}) EXPECT_FALSE(mla_decode_kernel_depends_on_length(b, 16)) << b;
  for (int64_t rows : {32, 128}) EXPECT_FALSE(mla_decode_kernel_depends_on_length(64, rows)) << rows;
}

TEST(MlaDecodeKernelRule, MoreRowsTakeThePartitionedKernelsAtEveryBatch) {
  // V3 on one GPU (128 heads) or under TP2 / TP4 (64 / 32), or 16 heads x 2 tokens: the seesaw.
  for (int64_t rows : {17, 32, 64, 128}) {
    for (const int64_t len : {int64_t{0}, kSplitSMaxSeqLen, int64_t{32768}}) {
      for (int64_t b : {1, 4, 7, 8, 48, 64, 112, 128}) {
        EXPECT_TRUE(use_partitioned_kernels(b, rows, len)) << b << " x " << rows << ", " << len;
      }
    }
  }
}

TEST(MlaDecodeKernelRule, RingKernelUpToSixteenRows) {
  // At most 16 query rows a sequence (16 heads x 1 token, 8 x 2, ...) fit the ring kernel's tiles.
  for (int64_t rows : {1, 2, 8, 16}) EXPECT_TRUE(use_ring_kernel(rows)) << rows;
  for (int64_t rows : {17, 32, 64, 128}) EXPECT_FALSE(use_ring_kernel(rows)) << rows;
}

TEST(MlaDecodeKernelRule, KernelOfACallFromTheScheduleAndTheRows) {
  // Split S whenever the schedule says so; else the ring kernel at <= 16 rows, the seesaw above.
  for (int64_t rows : {16, 128}) EXPECT_EQ(decode_kernel(false, rows), DecodeKernel::kSplitS);
  for (int64_t rows : {1, 16}) EXPECT_EQ(decode_kernel(true, rows), DecodeKernel::kRing);
  for (int64_t rows : {17, 32, 64, 128, 256}) EXPECT_EQ(decode_kernel(true, rows), DecodeKernel::kSeesaw);
  EXPECT_STREQ(decode_kernel_name(DecodeKernel::kSeesaw), "seesaw");
  EXPECT_STREQ(decode_kernel_name(DecodeKernel::kRing), "ring");
  EXPECT_STREQ(decode_kernel_name(DecodeKernel::kSplitS), "split_s");
}

TEST(MlaDecodeKernelRule, EvictFirstCopiesWhenEachBlockCrossesFromL2Once) {
  // (heads, query tokens): up to 64 query rows a sequence make one tile, and one CTA reads each block.
  for (auto [n, q] : {std::pair{16, 1}, {16, 4}, {64, 1}, {8, 8}}) {
    EXPECT_TRUE(use_kv_evict_first(plan_mla_split(n, q, 132).num_m_tiles, false)) << n << " x " << q;
  }
  // More tiles read each block apart, unless tile pairs share it by multicast.
  for (auto [n, q] : {std::pair{128, 1}, {16, 5}, {64, 2}, {128, 2}}) {
    EXPECT_FALSE(use_kv_evict_first(plan_mla_split(n, q, 132).num_m_tiles, false)) << n << " x " << q;
    EXPECT_TRUE(use_kv_evict_first(plan_mla_split(n, q, 132).num_m_tiles, true)) << n << " x " << q;
  }
}

TEST(MlaDecodeKernelRule, SeesawMergesItselfFromSixteenSequencesInOneWave) {
  // The grids the plans make are one wave: 128 heads (2 tiles), 32 heads, 128 heads x 2 tokens.
  for (auto [n, q] : {std::pair{128, 1}, {32, 1}, {128, 2}}) {
    const MlaSplitPlan plan = plan_mla_split(n, q, 132);
    const int64_t ctas = int64_t{plan.num_m_tiles} * plan.num_parts;
    SCOPED_TRACE(std::to_string(n) + " heads x " + std::to_string(q) + " tokens");
    for (int64_t b : {1, 4, 8, 15}) EXPECT_FALSE(use_seesaw_merge(true, b, ctas, 132)) << b;
    for (int64_t b : {16, 32, 128, 1024}) EXPECT_TRUE(use_seesaw_merge(true, b, ctas, 132)) << b;
  }
  EXPECT_FALSE(use_seesaw_merge(false, 64, 132, 132));  // the ring kernel leaves it to the combine kernel
  EXPECT_FALSE(use_seesaw_merge(true, 64, 133, 132));   // more CTAs than SMs: not all resident at once
}

TEST(MlaDecodeKernelRule, SeesawTilePairsShareBlocksAt128HeadsWhenTheClustersFit) {
  // 128 heads: every sequence's rows fill whole tile pairs, so both CTAs of a pair walk the same
  // blocks; the plans' 66 pairs (x tokens) fit the H200's 66 clusters of two.
  for (int64_t q : {1, 2, 3}) {
    const MlaSplitPlan plan = plan_mla_split(128, q, 132);
    const int64_t parts = plan.num_parts;
    SCOPED_TRACE(std::to_string(q) + " tokens, " + std::to_string(parts) + " partitions");
    for (int64_t b : {int64_t{4}, parts, 2 * parts}) {
      EXPECT_TRUE(use_kv_multicast(true, 128, plan.num_m_tiles, parts, b, 66)) << b;
    }
    for (int64_t b : {int64_t{1}, int64_t{3}, 2 * parts + 1, int64_t{256}}) {  // too few; too many pieces a CTA
      EXPECT_FALSE(use_kv_multicast(true, 128, plan.num_m_tiles, parts, b, 66)) << b;
    }
    EXPECT_FALSE(use_kv_multicast(false, 128, plan.num_m_tiles, parts, parts, 66));  // ring, split S
    EXPECT_FALSE(use_kv_multicast(true, 128, plan.num_m_tiles, parts, parts, 65));   // a pair waits a wave
    EXPECT_FALSE(use_kv_multicast(true, 128, plan.num_m_tiles, parts, parts, 0));    // no clusters
  }
  // 64 heads x 2 tokens is two tiles too, but a one-token sequence of the same batch has rows in
  // tile 0 only: its pair would walk different blocks.
  const MlaSplitPlan two_tokens = plan_mla_split(64, 2, 132);
  EXPECT_FALSE(use_kv_multicast(true, 64, two_tokens.num_m_tiles, two_tokens.num_parts, 64, 66));
  EXPECT_FALSE(use_kv_multicast(true, 32, 1, 132, 64, 66));
}

}  // namespace
}  // namespace mlaserve::ops::sm90
