// CUTLASS's grouped GEMM (MoeBf16Kernel::kCutlassGrouped through moe_grouped_gemm_cuda; kAuto's for
// large down products, MoeBf16KernelRule):
// each product alone (check_gemm: plain at the down projection's shape, SwiGLU at gate_up's, which
// CUTLASS runs as the [P, 2·Im] product and silu_mul_rows_cuda) against linear_cpu (and
// silu_mul_cpu) on the same bf16 values, and the layer as its two launches (a Variant, so through
// check_step and the chain's CUDA graph). Small problems for compute-sanitizer: groups of 1 .. 129
// rows and more tiles than SMs, empty experts, a rank's share (other rows stay poisoned), N tiles
// partial and odd in number (the 1 x 2 cluster's padding tile), 64 and 256 experts; V2-Lite's
// prefill step (1600 tokens: P 9600, random and skewed routings; 1601: P not a multiple of 128) and
// V3 at 512 tokens, both products beside the wgmma kernel's.
//
// The fixture and the tolerances: moe_experts_cuda_fixture.h.
#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "moe_experts_cuda_fixture.h"
#include "ops/cuda/moe_grouped_gemm_sm80_heuristics.h"

namespace mlaserve::ops::moe_experts_test {

// ---- CUTLASS's grouped GEMM (MoeBf16Kernel::kCutlassGrouped) -------------------------------------
// The Small cases also run under compute-sanitizer.

// The small routings of testing::kSmallGroupCases (moe_test_pool.h): groups of one row, partial M
// tiles, empty experts, one row in all, more tiles than SMs (42 M tiles x 2 N tiles), and shares
// of the experts, one of them with no rows.
TEST_F(MoeExpertsCuda, SmallCutlassGrouped) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, testing::kSmallPool, seed);
  for (size_t i = 0; i < testing::kSmallGroupCases.size(); ++i) {
    const testing::RoutingCase& c = testing::kSmallGroupCases[i];
    check_cutlass(c.counts, seed + 1 + 3 * i, /*check_all=*/true, c.e0, c.e1);
  }
}

// N tiles partial and odd in number: H 384 (the down GEMM's N: a 256-wide tile and half of one)
// and Im 640 (gate_up's 1280 weight rows: 5 N tiles, so the 1 x 2 cluster pads every group with
// a tile wholly past N); K 384 and 640 (6 and 10 k-tiles of 64).
TEST_F(MoeExpertsCuda, SmallCutlassOddTiles) {
  const uint64_t seed = fresh_seed();
  make_weights(MoeShape{8, 384, 640, 2}, {0, 2, 3, 4, 6, 7}, seed);
  check_cutlass({0, 0, 127, 65, 1, 0, 129, 0}, seed + 1, /*check_all=*/true);
  check_cutlass({700, 0, 65, 1500, 1, 0, 2100, 639}, seed + 4, true);
}

// 64 and 256 experts (the group scheduler walks the groups' tile counts 32 at a time): most of
// them empty, the others of 1 .. 300 rows; all experts, then the share [E/4, 3E/4).
TEST_F(MoeExpertsCuda, SmallCutlassManyExperts) {
  for (const int64_t experts : {64, 256}) {
    const uint64_t seed = fresh_seed();
    std::mt19937_64 rng(seed);
    const testing::SparseRouting routing = testing::sparse_routing(experts, rng);
    make_weights(MoeShape{experts, 512, 256, 2}, routing.pool, seed);
    check_cutlass(routing.counts, seed + 1, /*check_all=*/true);
    check_cutlass(routing.counts, seed + 4, true, experts / 4, 3 * experts / 4);
  }
}

// The chain of the note at the top (router, routing and gather, then gate_up and down) through
// CUTLASS's kernel: eager, then captured in a CUDA graph (the workspaces come from the caching
// allocator, filled by the eager run: nothing allocated or synchronised in the capture) and
// replayed twice with the same bits, every row against the CPU; 3, 64 and 300 tokens.
TEST_F(MoeExpertsCuda, SmallCutlassGraphCapture) {
  make_weights(kSmall, {0, 1, 2, 3, 4, 5, 6, 7}, fresh_seed());
  for (int64_t t : {3, 64, 300}) check_chain(kSmall, t, MoeBf16Kernel::kCutlassGrouped);
}

// V2-Lite (all 64 experts with weights, 1.1 GB): the prefill step of 1600 tokens (P 9600, ~150
// rows an expert) routed at random (k distinct experts a token), then skewed (16 experts empty,
// ~2150 rows down to ~45), then 1601 skewed tokens (P 9606, not a multiple of 128); both products
// through CUTLASS's kernel and the wgmma kernel (fused SwiGLU), the layer through CUTLASS's; then
// the plain product through kAuto at 2731 tokens (CUTLASS's: MoeBf16KernelRule); three rows an
// expert checked.
TEST_F(MoeExpertsCuda, V2LiteCutlassGrouped) {
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  const std::vector<int64_t> all = all_experts(kV2Lite.experts);
  make_weights(kV2Lite, all, seed);
  const std::vector<std::vector<int32_t>> routings = {random_counts(kV2Lite, 1600, rng),
                                                      skewed_counts(kV2Lite, all, 1600, rng),
                                                      skewed_counts(kV2Lite, all, 1601, rng)};
  for (size_t i = 0; i < routings.size(); ++i) {
    const uint64_t step_seed = seed + 10 * (i + 1);
    check_cutlass(routings[i], step_seed, /*check_all=*/false);
    check_gemm(routings[i], step_seed + 3, false, MoeBf16Kernel::kWgmma, /*swiglu=*/false);
    check_gemm(routings[i], step_seed + 4, false, MoeBf16Kernel::kWgmma, /*swiglu=*/true);
  }
  // Where kAuto's plain product is CUTLASS's (257 rows an expert: MoeBf16KernelRule).
  check_gemm(random_counts(kV2Lite, 2731, rng), seed + 50, false, MoeBf16Kernel::kAuto, /*swiglu=*/false);
}

// kAuto's rule for the plain product (use_cutlass_grouped_bf16) at the points it was measured
// at (moe_grouped_gemm_sm80_heuristics.h): CUTLASS from 16 of its 128 x 256 tiles per mean expert.
TEST(MoeBf16KernelRule, CutlassForLargePlainProducts) {
  using sm80::use_cutlass_grouped_bf16;
  EXPECT_FALSE(use_cutlass_grouped_bf16(false, 9600, 64, 2048));   // V2-Lite T 1600: 150 rows an expert
  EXPECT_FALSE(use_cutlass_grouped_bf16(false, 12288, 64, 2048));  // T 2048: 192
  EXPECT_TRUE(use_cutlass_grouped_bf16(false, 16386, 64, 2048));   // T 2731: 257
  EXPECT_TRUE(use_cutlass_grouped_bf16(false, 24576, 64, 2048));   // T 4096: 384
  EXPECT_FALSE(use_cutlass_grouped_bf16(false, 16384, 256, 7168));  // V3 T 2048: 64
  EXPECT_TRUE(use_cutlass_grouped_bf16(false, 32768, 256, 7168));   // T 4096: 128
  EXPECT_FALSE(use_cutlass_grouped_bf16(true, 32768, 256, 2048));   // SwiGLU: never
}

// V3 (10 of 256 experts with weights, as in V3): 512 tokens skewed over them (P 4096: ~1580 rows
// for the first expert down to ~230 for the seventh, 249 experts empty); both products through
// CUTLASS's kernel and the wgmma kernel, the layer through CUTLASS's.
TEST_F(MoeExpertsCuda, V3CutlassGrouped) {
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  const std::vector<int64_t> pool = random_pool(kV3.experts, 10, rng);
  make_weights(kV3, pool, seed);
  const std::vector<int32_t> counts = skewed_counts(kV3, pool, 512, rng);
  check_cutlass(counts, seed + 1, /*check_all=*/false);
  check_gemm(counts, seed + 4, false, MoeBf16Kernel::kWgmma, /*swiglu=*/false);
  check_gemm(counts, seed + 5, false, MoeBf16Kernel::kWgmma, /*swiglu=*/true);
}

}  // namespace mlaserve::ops::moe_experts_test
