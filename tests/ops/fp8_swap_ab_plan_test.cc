// Where kAuto sends a dense FP8 GEMM and how it cuts the swap-AB kernel (linear_fp8_heuristics.h),
// on the H200's and the H100's figures: host rules only, so they run without a GPU.
#include <gtest/gtest.h>

#ifdef MLASERVE_WITH_CUDA
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ops/cuda/linear_fp8_heuristics.h"
#endif

namespace mlaserve::ops {
namespace {

#ifdef MLASERVE_WITH_CUDA
// An H200 (132 SMs) as swap_ab_gpu() describes it: the clusters of 1 .. 8 CTAs held at once by the
// kernels at three, two and one CTAs an SM (cudaOccupancyMaxActiveClusters on the H200,
// fp8_gemm_bench --all-splits, 2026-12-02).
constexpr int kHeld3[] = {396, 198, 124, 92, 69, 62, 47, 45};  // BN 16, one warpgroup
constexpr int kHeld2[] = {264, 132, 79, 62, 47, 39, 32, 30};   // BN 16 two, BN 64 and 128 one
constexpr int kHeld1[] = {132, 66, 39, 30, 22, 17, 15, 15};    // BN 64 and 128, two warpgroups

sm90_fp8::SwapAbGpu h200() {
  sm90_fp8::SwapAbGpu g;
  g.sms = 132;
  g.hbm_gbps = 4800;
  for (int bn : {16, 64, 128}) {
    for (int wgs : {1, 2}) {
      const int per_sm = sm90_fp8::swap_ab_ctas_per_sm(bn, wgs);
      const int* held = per_sm == 3 ? kHeld3 : (per_sm == 2 ? kHeld2 : kHeld1);
      for (int s = 1; s <= sm90_fp8::kMaxSplits; ++s) g.set_held(bn, wgs, s, held[s - 1]);
    }
  }
  return g;
}

const sm90_fp8::SwapAbGpu kH200 = h200();

// An H100 SXM: the H200's SMs and clusters, 3,352 GB/s of HBM (2,619 MHz x 5,120 bits).
sm90_fp8::SwapAbGpu h100() {
  sm90_fp8::SwapAbGpu g = h200();
  g.hbm_gbps = 3352;
  return g;
}

const sm90_fp8::SwapAbGpu kH100 = h100();

// Where kAuto sends the shapes cuBLASLt refuses (ceil(K/128) not a multiple of 4).
TEST(LinearFp8Rule, OneGroupPastSwapAbSizesWhereCublasLtRefuses) {
  using sm90_fp8::choose_fp8_gemm;
  using sm90_fp8::Fp8GemmPath;
  EXPECT_EQ(choose_fp8_gemm(1600, 2048, 2816, kH200), Fp8GemmPath::kOneGroup);        // V2-Lite shared down
  EXPECT_EQ(choose_fp8_gemm(129, 2048, 2816, kH200), Fp8GemmPath::kOneGroup);
  EXPECT_EQ(choose_fp8_gemm(128, 2048, 2816, kH200), Fp8GemmPath::kSwapAB);          // decode sizes
  EXPECT_EQ(choose_fp8_gemm(1600, 2048, 2816, kH200, false), Fp8GemmPath::kSwapAB);  // f32 out
  EXPECT_EQ(choose_fp8_gemm(1600, 2048, 10944, kH200), Fp8GemmPath::kSwapAB);        // K not a multiple of 128
  EXPECT_EQ(choose_fp8_gemm(1600, 2048, 2048, kH200), Fp8GemmPath::kCublasLt);
}

// T % 4 != 0 (which cuBLASLt refuses) runs cuBLASLt on T & ~3 rows and a GEMV on the rest where that
// pays (lt_split_pays): against the swap-AB kernel from 512 tokens and 2^31 multiply-adds, against
// the one-group kernel from 1,024 tokens.
TEST(LinearFp8Rule, OddTokenCountsSplitAroundCublasLt) {
  using sm90_fp8::choose_fp8_gemm;
  using sm90_fp8::cublaslt_split_fits;
  using sm90_fp8::Fp8GemmPath;
  for (const sm90_fp8::SwapAbGpu& gpu : {kH100, kH200}) {
    EXPECT_EQ(choose_fp8_gemm(4097, 2112, 7168, gpu), Fp8GemmPath::kCublasLtSplit);  // V3 qkv_a
    EXPECT_EQ(choose_fp8_gemm(513, 2112, 7168, gpu), Fp8GemmPath::kCublasLtSplit);
    EXPECT_EQ(choose_fp8_gemm(511, 2112, 7168, gpu), Fp8GemmPath::kSwapAB);          // below 512 tokens
    EXPECT_EQ(choose_fp8_gemm(1025, 576, 7168, gpu), Fp8GemmPath::kCublasLtSplit);   // kv_a
    EXPECT_EQ(choose_fp8_gemm(513, 576, 7168, gpu), Fp8GemmPath::kSwapAB);           // 2.1e9 < 2^31
    EXPECT_EQ(choose_fp8_gemm(1025, 576, 2048, gpu), Fp8GemmPath::kSwapAB);          // V2-Lite kv_a
    EXPECT_EQ(choose_fp8_gemm(2049, 576, 2048, gpu), Fp8GemmPath::kCublasLtSplit);
    EXPECT_EQ(choose_fp8_gemm(4096, 2112, 7168, gpu), Fp8GemmPath::kCublasLt);
    EXPECT_EQ(choose_fp8_gemm(1601, 2048, 10944, gpu), Fp8GemmPath::kSwapAB);  // ceil(K/128) = 86
    // Where the one-group kernel takes the shape: it up to 1,023 tokens, the split from 1,024.
    EXPECT_EQ(choose_fp8_gemm(1023, 7168, 16384, gpu), Fp8GemmPath::kOneGroup);       // V3 o_proj
    EXPECT_EQ(choose_fp8_gemm(1025, 7168, 16384, gpu), Fp8GemmPath::kCublasLtSplit);
    EXPECT_EQ(choose_fp8_gemm(4097, 7168, 2048, gpu), Fp8GemmPath::kCublasLtSplit);  // V3 shared down
    EXPECT_EQ(choose_fp8_gemm(1025, 512, 2048, gpu), Fp8GemmPath::kOneGroup);        // 1.1e9 < 2^31
    EXPECT_EQ(choose_fp8_gemm(1023, 7168, 2048, gpu, false), Fp8GemmPath::kCublasLtSplit);  // f32 out
  }
  EXPECT_TRUE(cublaslt_split_fits(5, 2112, 7168));
  EXPECT_FALSE(cublaslt_split_fits(3, 2112, 7168));   // no row in fours
  EXPECT_FALSE(cublaslt_split_fits(8, 2112, 7168));   // cuBLASLt takes it whole
  EXPECT_FALSE(cublaslt_split_fits(5, 2048, 2816));   // ceil(K/128) = 22
}

// The swap-AB kernel's split sized to the GPU's CTA slots, and where kAuto takes it over cuBLASLt
// at 17-64 tokens (the H200 figures in linear_fp8_heuristics.h).
TEST(LinearFp8Rule, SwapAbSplitFillsOneWave) {
  using sm90_fp8::choose_fp8_gemm;
  using sm90_fp8::Fp8GemmPath;
  using sm90_fp8::plan_swap_ab;
  const sm90_fp8::SwapAbPlan qkv_a = plan_swap_ab(64, 2112, 7168, kH200);  // 33 tiles, 264 slots
  EXPECT_EQ(qkv_a.wgs, 1);
  EXPECT_EQ(qkv_a.splits, 6);
  const sm90_fp8::SwapAbPlan o_proj = plan_swap_ab(64, 7168, 16384, kH200);  // 56 tiles, 132 slots
  EXPECT_EQ(o_proj.wgs, 2);
  EXPECT_EQ(o_proj.splits, 2);
  EXPECT_EQ(plan_swap_ab(64, 3072, 2048, kH200).splits, 4);      // V2-Lite q_proj: 48 tiles
  const sm90_fp8::SwapAbPlan gate_up = plan_swap_ab(64, 36864, 7168, kH200);  // 576 tiles: persistent,
  EXPECT_EQ(gate_up.splits, 1);                                                    // three CTAs an SM
  EXPECT_TRUE(gate_up.three_per_sm);
  EXPECT_EQ(gate_up.ctas, 3 * kH200.sms);
  EXPECT_EQ(plan_swap_ab(64, 24576, 1536, kH200).ctas, 384);     // q_b_proj: every tile at once
  EXPECT_FALSE(plan_swap_ab(64, 16384, 7168, kH200).three_per_sm);  // 256 tiles fit two an SM
  EXPECT_FALSE(qkv_a.three_per_sm);                                  // split plans keep 5 stages
  EXPECT_EQ(plan_swap_ab(16, 32768, 512, kH200).splits, 1);      // kv_b_proj: 512 tiles
  EXPECT_EQ(plan_swap_ab(128, 576, 7168, kH200).wgs, 1);         // kv_a: 9 tiles of 64 rows
  EXPECT_EQ(plan_swap_ab(128, 2112, 7168, kH200).wgs, 2);
  for (int64_t t : {1, 16, 64, 128}) {
    for (int64_t n : {576, 2112, 7168, 36864}) {
      const sm90_fp8::SwapAbPlan p = plan_swap_ab(t, n, 7168, kH200);
      const int64_t ctas = static_cast<int64_t>(p.ctas) * p.splits;
      EXPECT_LE(ctas, int64_t{kH200.sms} * sm90_fp8::swap_ab_ctas_per_sm(p.bn, p.wgs, p.three_per_sm))
          << t << " x " << n;
    }
  }
  EXPECT_EQ(choose_fp8_gemm(64, 7168, 16384, kH200), Fp8GemmPath::kSwapAB);   // V3 o_proj
  EXPECT_EQ(choose_fp8_gemm(64, 36864, 7168, kH200), Fp8GemmPath::kSwapAB);    // three CTAs an SM
  EXPECT_EQ(choose_fp8_gemm(32, 24576, 1536, kH200), Fp8GemmPath::kSwapAB);    // q_b_proj
  EXPECT_EQ(choose_fp8_gemm(64, 32768, 512, kH200), Fp8GemmPath::kCublasLt);   // kv_b_proj: K 512
  EXPECT_EQ(choose_fp8_gemm(128, 7168, 16384, kH200), Fp8GemmPath::kCublasLt);
  EXPECT_EQ(choose_fp8_gemm(128, 2112, 7168, kH200), Fp8GemmPath::kSwapAB);
  EXPECT_EQ(choose_fp8_gemm(128, 2048, 2048, kH200), Fp8GemmPath::kSwapAB);    // V2-Lite o_proj:
  EXPECT_EQ(plan_swap_ab(128, 2048, 2048, kH200).bn, 64);                      // two token tiles
  EXPECT_EQ(plan_swap_ab(128, 2048, 2816, kH200).bn, 64);                      // no cuBLASLt
  EXPECT_EQ(plan_swap_ab(96, 2048, 10944, kH200).t_tiles, 2);
  EXPECT_EQ(plan_swap_ab(128, 2112, 7168, kH200).bn, 128);                     // V3 qkv_a
  EXPECT_EQ(choose_fp8_gemm(128, 5632, 2048, kH200), Fp8GemmPath::kCublasLt);  // V2-Lite shared gate_up
}

// The split stops where the GPU no longer holds every cluster at once: V3's shared gate (or up)
// alone, 2048 x 7168, at 100 tokens is 16 tiles of 128 x 128 (two warpgroups, one CTA an SM); 7
// splits fill 85% of the 132 slots, but the H200 holds 15 clusters of 7, so 6. A GPU that held 16
// would take 7. (Before the BN = 16 fill of 60%, V2-Lite's q_proj at 9-16 tokens was such a case:
// 48 clusters of 7 against 47 held, 9.0 us, where 6 splits took 6.2.)
TEST(LinearFp8Rule, SwapAbSplitStopsAtTheClustersHeld) {
  const sm90_fp8::SwapAbPlan gate = sm90_fp8::plan_swap_ab(100, 2048, 7168, kH200);
  EXPECT_EQ(gate.bn, 128);
  EXPECT_EQ(gate.wgs, 2);
  EXPECT_EQ(swap_ab_tiles(gate), 16);
  EXPECT_EQ(gate.splits, 6);
  sm90_fp8::SwapAbGpu roomy = kH200;
  roomy.set_held(128, 2, 7, 16);
  EXPECT_EQ(sm90_fp8::plan_swap_ab(100, 2048, 7168, roomy).splits, 7);
  sm90_fp8::SwapAbGpu none = kH200;  // no cluster of 2 or more fits: persistent CTAs
  for (int s = 2; s <= sm90_fp8::kMaxSplits; ++s) none.set_held(128, 2, s, 0);
  EXPECT_EQ(sm90_fp8::plan_swap_ab(100, 2048, 7168, none).splits, 1);
}

// At BN = 16 a split fills at most 60% of the slots: V2-Lite's q_proj at 16 tokens (48 tiles, 396
// slots) 4 splits, V3's o_proj at 8 (56 tiles of two warpgroups, 264 slots) 2, the shared down
// (112 tiles) 2; at BN = 64 85%: V3's qkv_a at 64 tokens (33 tiles, 264 slots) 6.
TEST(LinearFp8Rule, SwapAbSplitFillsLessAtBn16) {
  EXPECT_EQ(sm90_fp8::plan_swap_ab(16, 3072, 2048, kH200).splits, 4);
  EXPECT_EQ(sm90_fp8::plan_swap_ab(8, 7168, 16384, kH200).splits, 2);
  EXPECT_EQ(sm90_fp8::plan_swap_ab(16, 7168, 2048, kH200).splits, 2);
  EXPECT_EQ(sm90_fp8::plan_swap_ab(64, 2112, 7168, kH200).splits, 6);
}

// Beside another kernel (kv_a_proj on the side stream) the split counts on kBesideHeldPercent of
// the clusters: V3's q_a at 32 tokens 5 splits (24 clusters of 5 against 28 of 47) where alone it
// takes 8 (24 of 30).
TEST(LinearFp8Rule, SwapAbSplitBesideAnotherKernelLeavesRoom) {
  const sm90_fp8::SwapAbGpu beside = kH200.share(sm90_fp8::kBesideHeldPercent);
  EXPECT_EQ(beside.held(64, 1, 5), 28);
  EXPECT_EQ(sm90_fp8::plan_swap_ab(32, 1536, 7168, beside).splits, 5);
  EXPECT_EQ(sm90_fp8::plan_swap_ab(32, 1536, 7168, kH200).splits, 8);
  EXPECT_EQ(sm90_fp8::choose_fp8_gemm(32, 1536, 7168, beside), sm90_fp8::Fp8GemmPath::kSwapAB);
}

// No split where K is a few groups, on either card: a V3 TP8 rank's kv_b_proj (4096 x 512, 64
// tiles) and shared down (7168 x 256); the unknown bandwidth of a GPU that reports no memory clock
// splits as before.
TEST(LinearFp8Rule, SwapAbSplitNeedsEightKGroups) {
  for (const sm90_fp8::SwapAbGpu& gpu : {kH100, kH200}) {
    EXPECT_EQ(sm90_fp8::plan_swap_ab(32, 4096, 512, gpu).splits, 1);
    EXPECT_EQ(sm90_fp8::plan_swap_ab(64, 7168, 256, gpu).splits, 1);
    EXPECT_EQ(sm90_fp8::plan_swap_ab(16, 7168, 256, gpu).splits, 1);
    EXPECT_EQ(sm90_fp8::plan_swap_ab(64, 3072, 1536, gpu).splits, 4);  // TP8 q_b_proj: 12 groups, 48 tiles
  }
  sm90_fp8::SwapAbGpu unknown = kH100;
  unknown.hbm_gbps = 0;
  EXPECT_EQ(sm90_fp8::plan_swap_ab(64, 7168, 2048, unknown).splits, 2);
}

// A split only where the persistent plan's CTAs fall short of the card's bandwidth: 112 tiles
// (V3's shared down and a TP8 rank's o_proj, 7168 x 2048) and 88 (V2-Lite's shared gate_up) run
// persistent on an H100, then at 17-64 tokens cuBLASLt, as fast there; split on an H200. 72 tiles
// (a TP8 rank's dense gate_up, 4608 x 7168) split on both.
TEST(LinearFp8Rule, SwapAbSplitOnlyBelowTheCardsBandwidth) {
  using sm90_fp8::choose_fp8_gemm;
  using sm90_fp8::Fp8GemmPath;
  using sm90_fp8::plan_swap_ab;
  for (int64_t t : {16, 64}) {
    EXPECT_EQ(plan_swap_ab(t, 7168, 2048, kH100).splits, 1) << t;
    EXPECT_EQ(plan_swap_ab(t, 7168, 2048, kH200).splits, 2) << t;
  }
  EXPECT_EQ(plan_swap_ab(64, 5632, 2048, kH100).splits, 1);
  EXPECT_EQ(plan_swap_ab(64, 5632, 2048, kH200).splits, 2);
  EXPECT_EQ(choose_fp8_gemm(64, 7168, 2048, kH100), Fp8GemmPath::kCublasLt);
  EXPECT_EQ(choose_fp8_gemm(64, 7168, 2048, kH200), Fp8GemmPath::kSwapAB);
  EXPECT_EQ(choose_fp8_gemm(16, 7168, 2048, kH100), Fp8GemmPath::kSwapAB);  // persistent
  EXPECT_EQ(choose_fp8_gemm(32, 5632, 2048, kH100), Fp8GemmPath::kCublasLt);
  for (const sm90_fp8::SwapAbGpu& gpu : {kH100, kH200}) {
    EXPECT_EQ(plan_swap_ab(64, 4608, 7168, gpu).splits, 3);
    EXPECT_EQ(plan_swap_ab(64, 2112, 7168, gpu).splits, 6);  // qkv_a: 33 tiles
  }
}

// At 65-128 tokens a shape cuBLASLt refuses takes two token tiles of 64 at any N: a TP8 rank's
// dense down (7168 x 2304) and shared down (7168 x 256), persistent, in 112 tiles of two warpgroups
// (224 of one would load some SMs twice).
TEST(LinearFp8Rule, TwoTokenTilesWhereCublasLtRefuses) {
  for (const sm90_fp8::SwapAbGpu& gpu : {kH100, kH200}) {
    for (int64_t t : {65, 96, 128}) {
      for (int64_t k : {2304, 256}) {
        const sm90_fp8::SwapAbPlan p = sm90_fp8::plan_swap_ab(t, 7168, k, gpu);
        EXPECT_EQ(p.bn, 64) << t << " " << k;
        EXPECT_EQ(p.t_tiles, 2) << t << " " << k;
        EXPECT_EQ(p.wgs, 2) << t << " " << k;
        EXPECT_EQ(p.splits, 1) << t << " " << k;
        EXPECT_EQ(p.ctas, 112) << t << " " << k;
      }
    }
    EXPECT_EQ(sm90_fp8::plan_swap_ab(64, 7168, 2304, gpu).wgs, 1);     // one token tile: 112 tiles
    EXPECT_EQ(sm90_fp8::plan_swap_ab(128, 7168, 2048, gpu).bn, 128);  // cuBLASLt takes it
  }
}

// Two token tiles with two warpgroups where K is long: V2-Lite's dense down (2048 x 10944) in 32
// tiles of 3 splits, one CTA an SM; its shared down (2048 x 2816) keeps one warpgroup, and so do the
// narrow shapes of short K (o_proj, 2048 x 2048).
TEST(LinearFp8Rule, TwoTokenTilesTakeTwoWarpgroupsWhereKIsLong) {
  for (const sm90_fp8::SwapAbGpu& gpu : {kH100, kH200}) {
    for (int64_t t : {65, 96, 128}) {
      const sm90_fp8::SwapAbPlan down = sm90_fp8::plan_swap_ab(t, 2048, 10944, gpu);
      EXPECT_EQ(down.bn, 64) << t;
      EXPECT_EQ(down.wgs, 2) << t;
      EXPECT_EQ(swap_ab_tiles(down), 32) << t;
      EXPECT_EQ(down.splits, 3) << t;
      EXPECT_EQ(sm90_fp8::plan_swap_ab(t, 2048, 2816, gpu).wgs, 1) << t;
      EXPECT_EQ(sm90_fp8::plan_swap_ab(t, 2048, 2048, gpu).wgs, 1) << t;
    }
    EXPECT_EQ(sm90_fp8::plan_swap_ab(64, 2048, 10944, gpu).wgs, 1);  // one token tile
  }
}

// Every dense projection of V3 (TP1) and V2-Lite, N x K.
struct Projection {
  int64_t n, k;
};
constexpr Projection kProjections[] = {
    {1536, 7168},  {576, 7168},   {2112, 7168}, {24576, 1536}, {32768, 512},  {7168, 16384},
    {18432, 7168}, {7168, 18432}, {2048, 7168}, {7168, 2048},  {3072, 2048},  {576, 2048},
    {4096, 512},   {2048, 2048},  {10944, 2048}, {2048, 10944}, {2816, 2048}, {2048, 2816}};

// Every plan kAuto or the candidates give for T x (N, K) on `gpu` covers its shape with at most one
// split a K group, and the default split plan runs in one wave of clusters.
void check_plans(const sm90_fp8::SwapAbGpu& gpu, int64_t t, const Projection& s) {
  const std::vector<sm90_fp8::SwapAbPlan> plans = sm90_fp8::swap_ab_candidates(t, s.n, s.k, gpu);
  ASSERT_FALSE(plans.empty());
  const sm90_fp8::SwapAbPlan& auto_plan = plans.front();
  const std::string at = " at T " + std::to_string(t) + ", " + std::to_string(s.n) + " x " + std::to_string(s.k) +
                         ", " + std::to_string(gpu.sms) + " SMs";
  if (auto_plan.splits > 1) {
    EXPECT_LE(swap_ab_tiles(auto_plan), gpu.held(auto_plan.bn, auto_plan.wgs, auto_plan.splits))
        << swap_ab_plan_name(auto_plan) << at;
  }
  for (const sm90_fp8::SwapAbPlan& p : plans) {
    const std::string where = swap_ab_plan_name(p) + at;
    EXPECT_GE(int64_t{p.n_tiles} * 64 * p.wgs, s.n) << where;
    EXPECT_GE(int64_t{p.t_tiles} * p.bn, t) << where;
    EXPECT_LE(p.splits, std::min<int64_t>(sm90_fp8::kMaxSplits, (s.k + 127) / 128)) << where;
    if (p.splits > 1) {
      EXPECT_EQ(p.ctas, swap_ab_tiles(p)) << where << ": one tile a CTA";
    }
    EXPECT_LE(p.ctas, swap_ab_tiles(p)) << where;
  }
}

// check_plans at T = 1 .. 256 on every projection: on the H200, beside another kernel there, and on
// a smaller GPU (78 SMs, an H20's count, holding 60% of the H200's clusters).
TEST(LinearFp8Rule, SwapAbPlansCoverTheirShapesInOneWave) {
  sm90_fp8::SwapAbGpu small = kH200.share(60);
  small.sms = 78;
  for (const sm90_fp8::SwapAbGpu& gpu : {kH200, kH200.share(sm90_fp8::kBesideHeldPercent), small}) {
    for (const Projection& s : kProjections) {
      for (int64_t t = 1; t <= 256; ++t) check_plans(gpu, t, s);
    }
  }
}
#endif

}  // namespace
}  // namespace mlaserve::ops
