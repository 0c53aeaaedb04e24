// Which L2 prefetch regions a GPU kernel issues (ops/l2_prefetch.h): in order, while they fit half
// of the L2, empty ones dropped. The GPU side (the regions change no bit of the GEMV's output) is
// tests/ops/cuda/gemm_cuda_test.cc.
#include "ops/l2_prefetch.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace mlaserve::ops {
namespace {

constexpr size_t kMB = size_t{1} << 20;
constexpr size_t kH100L2 = 50 * kMB;

// Distinct fake device addresses: the rule never dereferences them.
const void* at(uintptr_t a) { return reinterpret_cast<const void*>(a); }

TEST(L2PrefetchRule, V2LiteSharedDownAndQProjFitAnH100) {
  const L2Prefetches wanted{{{at(0x1000), 11'534'336}, {at(0x2000), 12'582'912}}};  // bf16 [2048, 2816], [3072, 2048]
  const L2Prefetches kept = l2_prefetches_within(wanted, kH100L2);
  EXPECT_EQ(kept[0].data, wanted[0].data);
  EXPECT_EQ(kept[0].bytes, wanted[0].bytes);
  EXPECT_EQ(kept[1].data, wanted[1].data);
  EXPECT_EQ(kept[1].bytes, wanted[1].bytes);
}

TEST(L2PrefetchRule, ARegionPastHalfTheL2IsDroppedAndTheNextStillConsidered) {
  // V3 in bf16: the shared down [7168, 2048] alone (29.4 MB) is more than half of 50 MB.
  const L2Prefetches wanted{{{at(0x1000), 29'360'128}, {at(0x2000), 3 * kMB}}};
  const L2Prefetches kept = l2_prefetches_within(wanted, kH100L2);
  EXPECT_EQ(kept[0].data, wanted[1].data);
  EXPECT_EQ(kept[0].bytes, 3 * kMB);
  EXPECT_EQ(kept[1].data, nullptr);
  EXPECT_EQ(kept[1].bytes, 0u);
}

TEST(L2PrefetchRule, TheSecondRegionMustFitWhatTheFirstLeaves) {
  const L2Prefetches wanted{{{at(0x1000), 20 * kMB}, {at(0x2000), 6 * kMB}}};
  const L2Prefetches kept = l2_prefetches_within(wanted, kH100L2);
  EXPECT_EQ(kept[0].data, wanted[0].data);
  EXPECT_EQ(kept[1].bytes, 0u);
  // Exactly half fits.
  const L2Prefetches exact = l2_prefetches_within({{{at(0x1000), 20 * kMB}, {at(0x2000), 5 * kMB}}}, kH100L2);
  EXPECT_EQ(exact[1].bytes, 5 * kMB);
}

TEST(L2PrefetchRule, EmptyRegionsAndNoL2KeepNothing) {
  const L2Prefetches none = l2_prefetches_within({{{nullptr, kMB}, {at(0x2000), 0}}}, kH100L2);
  EXPECT_EQ(none[0].data, nullptr);
  EXPECT_EQ(none[1].data, nullptr);
  const L2Prefetches no_l2 = l2_prefetches_within({{{at(0x1000), kMB}, {}}}, 0);
  EXPECT_EQ(no_l2[0].bytes, 0u);
  EXPECT_EQ(l2_prefetches_within({}, kH100L2)[0].data, nullptr);
}

TEST(L2PrefetchRule, AnyRegionMeansBytes) {
  EXPECT_FALSE(any_l2_prefetch({}));
  EXPECT_FALSE(any_l2_prefetch({{{at(0x1000), 0}, {}}}));
  EXPECT_TRUE(any_l2_prefetch({{{}, {at(0x2000), 128}}}));
}

}  // namespace
}  // namespace mlaserve::ops
