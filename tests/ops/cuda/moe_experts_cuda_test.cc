// moe_experts_cuda (grouped GEMMs, SwiGLU fused, row ranges read on the device) against
// moe_experts_cpu, on fresh random bf16 inputs at DeepSeek's expert shapes: V2-Lite (64
// experts, H 2048, Im 1408, k 6) and V3 (256 experts, H 7168, Im 2048, k 8) with T = 1, 64,
// 256, 1024, 4096 (V2-Lite) and 1, 64, 1024, 4096 (V3) tokens, and small problems that run every
// tile configuration under compute-sanitizer. Mean rows per active expert > 16 (V2-Lite 256 and
// up, V3 1024 and up, SmallMidTiles, SmallPrefillTiles) run the Hopper wgmma kernel
// (moe_grouped_gemm_sm90.cuh), smaller ones the mma.sync decode tiles. The mma.sync mid tiles
// (H not a multiple of 256) have no case here. The decode tiles' rings (MoeDecodeRing, one
// cp.async depth per grid size) run each, through moe_experts_sm80_decode, at 1, 2 and 8 rows
// per expert at the V2-Lite, V2 and V3 shapes and on the small problem (SmallDecodeRings, for
// compute-sanitizer); every variant runs twice and must give the same bits both times.
//
// The grouped GEMV (moe_experts_gemv.cuh: what the dispatch runs at P <= 8, so the T = 1 steps
// above and the chains' small steps run it) forced beside the grouped GEMMs (check_paths): at
// V2-Lite and V3 shapes T = 1 .. 4 tokens over a pool of top_k + 3 experts (so experts of 2 .. T
// rows), once over all experts and once over a rank's share [E/4, 3E/4) (views of the weights and
// the offsets; the rows of other experts must stay poisoned), every row checked; a forced run at
// 64 tokens (passes of 8 rows); small problems with experts of 10 and 17 rows, shares at the ends
// and with no rows, and 300 experts (the slot search past one batch of 256). The GEMV runs with
// its default launch shape and with every one of kMoeGemvConfigs (moe_experts_gemv_heuristics.h:
// CTAs an SM, ring depth), each of which must agree with the grouped GEMMs (kPathsRelL2), and the
// chains run every one of them forced.
//
// Routing is skewed and leaves experts empty: rows go to the experts of a random pool with
// weights 1 / (rank + 1), a quarter of the pool gets none, and T = 1 routes to k distinct
// experts as a real decode step does. Weights exist (random) only for the pool; every other
// expert's weights are NaN, so a kernel that used a wrong expert, or an empty expert's tile,
// fails. Outputs are poisoned first and must be fully written. Of the large problems the CPU
// checks each active expert's first, last and one random row (V3 is 88 MFLOP a row): a tile that
// straddles experts, a lost M tile or a wrong N tile shows there.
//
// Chains (the decode tiles under programmatic dependent launch): the engine's MoE chain at one
// to a few tokens, router GEMV (f32 logits) -> moe_route_and_gather (routing, expert offsets,
// gathered rows) -> gate_up -> down, every kernel launched with PDL and each reading what the one
// before wrote. gate_up waits before it reads the offsets; the down GEMM reads them (written two
// kernels back) and issues its first weight k-tiles before its wait. Every output is poisoned
// (0xFF: offsets of -1, which clamp to empty experts) before each run; the experts' output must
// match the CPU reference on the GPU's own offsets and gathered rows, and a CUDA graph of the
// chain replayed twice must reproduce the eager run bit for bit.
//
// The wgmma kernel's 192 x 128 tile (MoeBf16Kernel::kWgmmaM192) forced (check_forced:
// each product against linear_cpu, then the layer as its two launches): experts of 1, 63, 64, 65,
// 128, 150, 191, 192, 193 and 400 rows (one, two and three warpgroups busy, one and two M tiles),
// P < 192, many M tiles, a rank's share, on the small problem (also under compute-sanitizer); the
// prefill step at V2-Lite (1600 tokens, ~150 rows an expert: the size the tile is for; also
// through kAuto, which takes it there for gate_up) and the same expert sizes at V3.
//
// The fixture and the tolerances: moe_experts_cuda_fixture.h; CUTLASS's grouped GEMM's cases:
// moe_experts_cutlass_cuda_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "moe_experts_cuda_fixture.h"

namespace mlaserve::ops::moe_experts_test {

// ---- small cases (also run under compute-sanitizer): every tile configuration ----------------

// 6 of 8 experts have weights. Decode tiles (mean rows per expert <= 16, the grouped GEMM forced:
// at P <= 8 the dispatch takes the GEMV): 5 tokens.
TEST_F(MoeExpertsCuda, SmallDecodeTiles) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, {0, 2, 3, 4, 6, 7}, seed);
  const std::vector<Variant> grouped = {MoeExpertsPath::kGroupedGemm};
  check_step({1, 0, 3, 2, 0, 0, 3, 1}, seed + 1, /*check_all=*/true, grouped);
  check_step({0, 0, 0, 0, 0, 0, 0, 10}, seed + 2, /*check_all=*/true, grouped);  // one expert, the last
}

// The grouped GEMV (moe_experts_gemv.cuh) against the CPU and the grouped GEMMs (check_paths):
// K = 512 and 256 (4 and 2 units of 128 bytes a row: some warps have none). Experts of 1 .. 3
// rows; a share of experts 2 .. 5; passes of 8 rows (experts of 10 and 17 rows); one row; one
// expert's share at the end of the offsets; a share with no rows (out untouched).
TEST_F(MoeExpertsCuda, SmallGemv) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, {0, 2, 3, 4, 6, 7}, seed);
  check_paths({1, 0, 3, 2, 0, 0, 3, 1}, seed + 1, 0, 8);
  check_paths({1, 0, 3, 2, 0, 0, 3, 1}, seed + 2, 2, 6);
  check_paths({0, 0, 10, 0, 0, 0, 0, 17}, seed + 3, 0, 8);
  check_paths({1, 0, 0, 0, 0, 0, 0, 0}, seed + 4, 0, 8);
  check_paths({2, 0, 0, 3, 0, 0, 0, 1}, seed + 5, 7, 8);
  check_paths({2, 0, 0, 0, 0, 0, 1, 0}, seed + 6, 2, 6);
}

// 300 experts (the GEMV's slot search reads the offsets 256 experts a batch; its chunks are 32
// experts wide): experts at both sides of 32 and of 256, shares that start and end there. H 256,
// Im 128 (2 and 1 units a row for most warps: none).
TEST_F(MoeExpertsCuda, SmallGemvManyExperts) {
  const uint64_t seed = fresh_seed();
  const MoeShape many{300, 256, 128, 2};
  make_weights(many, {0, 31, 32, 255, 256, 257, 299}, seed);
  std::vector<int32_t> counts(300, 0);
  counts[0] = 1, counts[31] = 2, counts[32] = 1, counts[255] = 3, counts[256] = 1, counts[257] = 9, counts[299] = 1;
  check_paths(counts, seed + 1, 0, 300);
  check_paths(counts, seed + 2, 31, 257);
  check_paths(counts, seed + 3, 256, 300);
}

// Every decode ring, whose prologues (2 to 10 k-tiles) are longer or shorter than K = 512 and
// 256 (gate_up, down: 8 and 4 k-tiles).
TEST_F(MoeExpertsCuda, SmallDecodeRings) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, {0, 2, 3, 4, 6, 7}, seed);
  check_step({1, 0, 3, 2, 0, 0, 3, 1}, seed + 1, /*check_all=*/true, kAllRings);
  check_step({1, 0, 0, 0, 0, 0, 0, 0}, seed + 2, /*check_all=*/true, kAllRings);  // one row
}

// The chain of the note at the top on the small problem (every expert with weights): 1, 3 and 8
// tokens through the model's dispatch and every decode ring (K 512 and 256: 8 and 4 k-tiles,
// shorter than the deepest rings' prologues).
TEST_F(MoeExpertsCuda, SmallChainedAfterRouting) {
  make_weights(kSmall, {0, 1, 2, 3, 4, 5, 6, 7}, fresh_seed());
  for (int64_t t : {1, 3, 8}) check_chain_every_ring(kSmall, t);
}

// 16 < mean <= 64 (the wgmma kernel, mostly one 128-row tile an expert with the second
// warpgroup idle): 256 rows, one expert over two tiles, the first expert empty.
TEST_F(MoeExpertsCuda, SmallMidTiles) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, {0, 2, 3, 4, 6, 7}, seed);
  check_step({0, 0, 150, 64, 1, 0, 40, 1}, seed + 1, /*check_all=*/true);
}

// Prefill tiles, the wgmma kernel (mean > 64): 1024 rows, an expert of exactly 128 and one of
// 129 rows, tiles of 1 and 10 rows (the second warpgroup's rows all past the expert); then 569
// rows (P not a multiple of the 128-row tile) whose last expert ends at P, so its last tile reads
// past the tensor (TMA zero fill).
TEST_F(MoeExpertsCuda, SmallPrefillTiles) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, {0, 2, 3, 4, 6, 7}, seed);
  check_step({128, 0, 129, 500, 1, 0, 266, 0}, seed + 1, /*check_all=*/true);
  check_step({3, 0, 170, 200, 65, 0, 0, 131}, seed + 2, /*check_all=*/true);
}

TEST_F(MoeExpertsCuda, SmallNoRowsIsANoOp) {
  make_weights(kSmall, {0}, fresh_seed());
  const Tensor x = Tensor::empty({0, kSmall.hidden}, DType::kBF16, Device::kCUDA);
  const Tensor off = testing::i32_tensor(std::vector<int32_t>(kSmall.experts + 1, 0), {kSmall.experts + 1});
  Tensor out = Tensor::empty({0, kSmall.hidden}, DType::kBF16, Device::kCUDA);
  Tensor hidden = Tensor::empty({0, kSmall.inter}, DType::kBF16, Device::kCUDA);
  moe_experts(x, off.to(Device::kCUDA), gpu_, ActQuantParams{}, hidden, out, Stream{stream_});
  MLA_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

// The 192 x 128 wgmma tile (kWgmmaM192) forced; 7 of 8 experts have weights (expert 1 is NaN and
// empty). Gate_up: K 512 (8 k-tiles, the 5-stage ring wraps), 4 N tiles of 64 channels; down: K
// 256 (4 k-tiles, fewer than the stages), 4 N tiles of 128 columns. Experts of 1, 63 and 64 rows
// (warpgroups 1 and 2 idle), 65 and 128 (warpgroup 2 idle), 129, 150, 191 and 192 (one M tile),
// 193 and 400 (a last tile of 1 and 16 rows); P = 100 (the A box of 192 rows reads past the
// tensor); 5005 rows (29 M tiles: four groups of kGroupM, the last partial; the last expert ends
// at P); a rank's share (the other rows must stay poisoned).
TEST_F(MoeExpertsCuda, SmallWgmmaM192) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, {0, 2, 3, 4, 5, 6, 7}, seed);
  const MoeBf16Kernel m192 = MoeBf16Kernel::kWgmmaM192;
  check_forced(m192, {1, 0, 63, 64, 65, 128, 150, 191}, seed + 1, /*check_all=*/true);
  check_forced(m192, {192, 0, 193, 400, 0, 129, 0, 1}, seed + 4, true);
  check_forced(m192, {0, 0, 0, 0, 0, 0, 0, 100}, seed + 7, true);
  check_forced(m192, {700, 0, 65, 1500, 1, 0, 2100, 639}, seed + 10, true);
  check_forced(m192, {150, 0, 191, 65, 0, 0, 193, 1}, seed + 13, true, 2, 6);
}

// ---- DeepSeek shapes -------------------------------------------------------------------------

// V2-Lite: 24 of 64 experts have weights (the rest NaN); T = 1, 64 (decode tiles), 256 (mid),
// 1024 and 4096 (prefill, wgmma).
TEST_F(MoeExpertsCuda, V2Lite) { check_model(kV2Lite, 24, {1, 64, 256, 1024, 4096}); }

// The decode tiles with every ring, and the GEMV (forced), at 1 to 8 rows per expert (decode
// batches of 1 to 8 tokens: at most one row a token per expert); then the model's dispatch (the
// GEMV up to 16 rows, the decode tiles above): V2-Lite (64 experts, H 2048, K 32 and 22 k-tiles)
// with k = 6 experts of 1, 2 and 8 rows each (one step of 1, 2 and 8 tokens that agree on their
// experts), 8 experts of 1 .. 8 rows, and skewed routings; V2 (160 experts, H 5120, Im 1536).
TEST_F(MoeExpertsCuda, V2LiteDecodeRowsPerExpert) {
  const uint64_t seed = fresh_seed();
  std::vector<int64_t> pool(12);
  std::iota(pool.begin(), pool.end(), 50);
  make_weights(kV2Lite, pool, seed);
  for (int32_t each : {1, 2, 8}) {
    check_step(uniform_counts(kV2Lite, pool, kV2Lite.top_k, each), seed + 1 + each, /*check_all=*/true,
               kRingsAndGemv);
  }
  std::vector<int32_t> counts(64, 0);
  for (int64_t i = 0; i < 8; ++i) counts[static_cast<size_t>(pool[i])] = static_cast<int32_t>(i + 1);  // 1 .. 8 rows
  check_step(counts, seed + 20, /*check_all=*/true, kRingsAndGemv);
  std::mt19937_64 rng(seed);
  for (int64_t t : {1, 2, 8}) check_step(skewed_counts(kV2Lite, pool, t, rng), seed + 100 + t, /*check_all=*/true);
}

// The chain at V2-Lite's shapes (all 64 experts with weights): the decode step's 1 token (6
// experts: gate_up 264 CTAs, down 192) and 2 and 8 tokens, through the model's dispatch and
// every ring.
TEST_F(MoeExpertsCuda, V2LiteChainedAfterRouting) {
  make_weights(kV2Lite, all_experts(kV2Lite.experts), fresh_seed());
  for (int64_t t : {1, 2, 8}) check_chain_every_ring(kV2Lite, t);
}

// The grouped GEMV at V2-Lite's shape (check_gemv_model): 1 .. 4 tokens, all experts and a share.
TEST_F(MoeExpertsCuda, V2LiteGemv) { check_gemv_model(kV2Lite); }

TEST_F(MoeExpertsCuda, V2DecodeRowsPerExpert) {
  const uint64_t seed = fresh_seed();
  make_weights(kV2, {3, 77, 80, 120, 158, 159}, seed);
  std::vector<int32_t> counts(160, 0);
  counts[3] = 1, counts[77] = 8, counts[80] = 2, counts[120] = 5, counts[159] = 3;
  check_step(counts, seed + 1, /*check_all=*/true, kRingsAndGemv);
  std::mt19937_64 rng(seed);
  for (int64_t t : {1, 8}) check_step(skewed_counts(kV2, {3, 77, 80, 120, 158, 159}, t, rng), seed + 50 + t, true);
}

// The token-rows GEMV against the GEMV on gathered rows, bit for bit (moe_token_rows_check.h): the
// small shape at 1, 3, 8 and 12 tokens and with experts of more rows than tokens (passes);
// V2-Lite at 1 .. 8 tokens (all staged), 12 and 16 (indexed); V3 at 1 .. 4 (all: the bf16 rows of
// H 7168 that fit one pass) and 8, 12 (indexed).
TEST_F(MoeExpertsCuda, SmallTokenRows) { check_token_rows(kSmall, kSmall.experts, {1, 3, 8, 12}, true); }
TEST_F(MoeExpertsCuda, V2LiteTokenRows) { check_token_rows(kV2Lite, 12, {1, 2, 3, 4, 5, 6, 7, 8, 12, 16}, false); }
TEST_F(MoeExpertsCuda, V3TokenRows) { check_token_rows(kV3, 12, {1, 2, 3, 4, 8, 12}, false); }

// V3 (256 experts, H 7168, Im 2048; 22.5 GB of stacked weights, 8 of them random): k = 8 experts
// of 1, 2 and 8 rows each with every ring and the GEMV (the decode tiles' 1-token step: gate_up
// 512 CTAs, down 896; the CPU checks every row at 1 and 2 rows, three rows of each expert at 8),
// then skewed routings of 1, 2 and 8 tokens over the model's dispatch.
TEST_F(MoeExpertsCuda, V3DecodeRowsPerExpert) {
  const uint64_t seed = fresh_seed();
  const std::vector<int64_t> pool = {0, 17, 63, 64, 128, 200, 254, 255};
  make_weights(kV3, pool, seed);
  for (int32_t each : {1, 2, 8}) {
    check_step(uniform_counts(kV3, pool, kV3.top_k, each), seed + 1 + each, /*check_all=*/each <= 2,
               kRingsAndGemv);
  }
  std::mt19937_64 rng(seed);
  for (int64_t t : {1, 2, 8}) check_step(skewed_counts(kV3, pool, t, rng), seed + 100 + t, /*check_all=*/false);
}

// V3: 10 of 256 experts have weights (22.5 GB of stacked bf16 weights on the GPU, 0.9 GB of
// them random); T = 1 (the GEMV), 64 (decode tiles), 1024 (mid), 4096 (prefill, wgmma).
TEST_F(MoeExpertsCuda, V3) { check_model(kV3, 10, {1, 64, 1024, 4096}); }

// The grouped GEMV at V3's shape (check_gemv_model; K 7168: 14 units a warp, 7 steps).
TEST_F(MoeExpertsCuda, V3Gemv) { check_gemv_model(kV3); }

// A rank's channel share of every expert (--expert-split channels): V2 under TP4, V3 under TP8.
TEST_F(MoeExpertsCuda, V2Tp4ChannelShare) { check_model(testing::kV2Tp4Channels, 40, {1, 8, 64, 1024}); }
TEST_F(MoeExpertsCuda, V3Tp8ChannelShareGemv) { check_gemv_model(testing::kV3Tp8Channels); }

// The 192 x 128 wgmma tile (kWgmmaM192) forced at V2-Lite (all 64 experts with weights, 1.1 GB;
// gate_up 22 N tiles of 64 channels, down 16 of 128 columns): the prefill step of 1600 tokens (P
// 9600) routed at random (k distinct experts a token: ~150 rows an expert, mostly one M tile
// each), then 1601 skewed tokens (P 9606, experts of up to ~2150 rows, 16 empty); three rows an
// expert.
TEST_F(MoeExpertsCuda, V2LiteWgmmaM192) {
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  const std::vector<int64_t> all = all_experts(kV2Lite.experts);
  make_weights(kV2Lite, all, seed);
  check_forced(MoeBf16Kernel::kWgmmaM192, random_counts(kV2Lite, 1600, rng), seed + 1, /*check_all=*/false);
  check_forced(MoeBf16Kernel::kWgmmaM192, skewed_counts(kV2Lite, all, 1601, rng), seed + 4, false);
  check_step(random_counts(kV2Lite, 1600, rng), seed + 7, false);  // kAuto: gate_up on this tile
}

// kAuto's gate_up takes the 192 x 128 tile when the mean expert has 129 .. 192 rows.
TEST(MoeBf16KernelRule, M192ForOneTallTileAnExpert) {
  using sm80::use_wgmma_m192;
  EXPECT_FALSE(use_wgmma_m192(true, 6144, 64));    // V2-Lite T 1024: 96 rows an expert
  EXPECT_FALSE(use_wgmma_m192(true, 8192, 64));    // 128: one 128-row tile
  EXPECT_TRUE(use_wgmma_m192(true, 8193, 64));     // 129
  EXPECT_TRUE(use_wgmma_m192(true, 9600, 64));     // T 1600: 150
  EXPECT_TRUE(use_wgmma_m192(true, 12288, 64));    // T 2048: 192
  EXPECT_FALSE(use_wgmma_m192(true, 12289, 64));   // 193
  EXPECT_TRUE(use_wgmma_m192(true, 38400, 256));   // V3 T 4800: 150
  EXPECT_FALSE(use_wgmma_m192(false, 9600, 64));   // the plain product: never
  EXPECT_FALSE(use_wgmma_m192(true, 150, 1000));   // fewer rows than experts: 1 an expert
}

// The 192 x 128 wgmma tile (kWgmmaM192) forced at V3 (10 of 256 experts with weights; gate_up 32
// N tiles of 64 channels, down 56 of 128 columns, K 7168 and 2048): the small case's expert sizes
// 1 .. 400 over the ten (P 1447), then 512 skewed tokens (P 4096); three rows an expert.
TEST_F(MoeExpertsCuda, V3WgmmaM192) {
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  const std::vector<int64_t> pool = random_pool(kV3.experts, 10, rng);
  make_weights(kV3, pool, seed);
  std::vector<int32_t> counts(static_cast<size_t>(kV3.experts), 0);
  const int32_t sizes[10] = {1, 63, 64, 65, 128, 150, 191, 192, 193, 400};
  for (size_t i = 0; i < pool.size(); ++i) counts[static_cast<size_t>(pool[i])] = sizes[i];
  check_forced(MoeBf16Kernel::kWgmmaM192, counts, seed + 1, /*check_all=*/false);
  check_forced(MoeBf16Kernel::kWgmmaM192, skewed_counts(kV3, pool, 512, rng), seed + 4, false);
}

}  // namespace mlaserve::ops::moe_experts_test
