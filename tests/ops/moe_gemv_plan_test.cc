// The routed experts' grouped GEMV: how many CTAs each expert slot gets (moe_gemv_ctas,
// moe_experts_gemv_heuristics.h), when the model's experts read the token rows and when gate_up
// launches early. Host arithmetic only, so it runs without a GPU; the GPU tests check that every
// launch shape computes the same outputs.
#include <gtest/gtest.h>

#include <cstdint>

#include "ops/cuda/moe_experts_gemv_heuristics.h"

namespace mlaserve::ops::gpu {
namespace {

constexpr int kSms = 132;  // an H100 / H200

// Tiles an expert: gate_up has Im / 8 (8 gate + 8 up rows a tile), down H / 16.
constexpr int64_t kV2LiteGateUp = 1408 / 8, kV2LiteDown = 2048 / 16;
constexpr int64_t kV3GateUp = 2048 / 8, kV3Down = 7168 / 16;

TEST(MoeGemvPlan, OneWaveKeepsTheDefaultRuns) {
  // V2-Lite at 1, 2 and 4 tokens (6, 12, 24 slots) and V3 at one token (8): the default grid of
  // 2 x 132 CTAs, runs as long as the tiles a slot need.
  EXPECT_EQ(moe_gemv_ctas(kV2LiteGateUp, 6, kMoeGemvDefault, kSms), 44);
  EXPECT_EQ(moe_gemv_ctas(kV2LiteGateUp, 12, kMoeGemvDefault, kSms), 22);
  EXPECT_EQ(moe_gemv_ctas(kV2LiteGateUp, 24, kMoeGemvDefault, kSms), 11);  // runs of 16 tiles
  EXPECT_EQ(moe_gemv_ctas(kV2LiteDown, 24, kMoeGemvDefault, kSms), 11);
  EXPECT_EQ(moe_gemv_ctas(kV3GateUp, 8, kMoeGemvDefault, kSms), 33);
  EXPECT_EQ(moe_gemv_ctas(kV3Down, 8, kMoeGemvDefault, kSms), 33);
}

TEST(MoeGemvPlan, PastOneWaveRunsOfEightTiles) {
  // V3 at two tokens: 17 CTAs x 16 slots = 272 > 264, so runs of 8 tiles (32 a slot, not 17).
  EXPECT_EQ(moe_gemv_ctas(kV3GateUp, 16, kMoeGemvDefault, kSms), 32);
  EXPECT_EQ(moe_gemv_ctas(kV3Down, 16, kMoeGemvDefault, kSms), 56);
  // V2-Lite at six and eight tokens: 11 CTAs (runs of 16) x 36 or 48 slots pass the wave.
  EXPECT_EQ(moe_gemv_ctas(kV2LiteGateUp, 36, kMoeGemvDefault, kSms), 22);
  EXPECT_EQ(moe_gemv_ctas(kV2LiteGateUp, 48, kMoeGemvDefault, kSms), 22);
  EXPECT_EQ(moe_gemv_ctas(kV2LiteDown, 48, kMoeGemvDefault, kSms), 16);
}

TEST(MoeGemvPlan, ShortExpertsKeepTheirRunsPastOneWave) {
  // Under tensor parallelism an expert's slice can be a few tiles (V3 over 8 GPUs: Im 256, 32
  // gate_up tiles): runs already shorter than 8 stay as they are, and no run is empty.
  EXPECT_EQ(moe_gemv_ctas(32, 16, kMoeGemvDefault, kSms), 17);
  EXPECT_EQ(moe_gemv_ctas(3, 200, kMoeGemvDefault, kSms), 2);
}

TEST(MoeGemvPlan, ExplicitRunLengthsAreKept) {
  EXPECT_EQ(moe_gemv_ctas(kV3GateUp, 16, MoeGemvConfig{1, 4, 4}, kSms), 64);
  EXPECT_EQ(moe_gemv_ctas(kV2LiteGateUp, 48, MoeGemvConfig{1, 4, 16}, kSms), 11);
}

// Token rows (use_moe_gemv_token_rows, moe_gemv_all_tokens), at V2-Lite's top-6 and V3's top-8:
// bf16 up to 8 tokens (a pass's rows) on the GEMV, e4m3 up to 16 tokens and 96 rows (past the
// gathered GEMV's 48), all T staged up to 8 bf16 / 2 e4m3 tokens.
TEST(MoeGemvPlan, TokenRowsLimits) {
  EXPECT_TRUE(use_moe_gemv_token_rows(8, 48, false, 1408));
  EXPECT_FALSE(use_moe_gemv_token_rows(9, 54, false, 1408));   // bf16 gathers past 8 tokens
  EXPECT_TRUE(use_moe_gemv_token_rows(16, 96, true, 1408));    // e4m3 V2-Lite: 96 rows
  EXPECT_FALSE(use_moe_gemv_token_rows(17, 102, true, 1408));
  EXPECT_TRUE(use_moe_gemv_token_rows(12, 96, true, 2048));    // e4m3 V3: 96 rows
  EXPECT_FALSE(use_moe_gemv_token_rows(13, 104, true, 2048));  // the grouped FP8 GEMM
  EXPECT_FALSE(use_moe_gemv_token_rows(0, 0, true, 2048));
  EXPECT_TRUE(moe_gemv_all_tokens(8, false));
  EXPECT_FALSE(moe_gemv_all_tokens(9, false));
  EXPECT_TRUE(moe_gemv_all_tokens(2, true));
  EXPECT_FALSE(moe_gemv_all_tokens(3, true));
}

// Narrow e4m3 experts (a TP8 or TP4 rank's channel share of V3's: Im 256, 512) take the GEMV for
// two V3 tokens' 16 rows only, gathered or token rows; bf16 ones, TP2's share (Im 1024) and whole
// e4m3 experts keep their limits.
TEST(MoeGemvPlan, NarrowFp8ExpertsLeaveTheGemvPastTwoTokens) {
  EXPECT_TRUE(use_moe_gemv(16, true, 256));
  EXPECT_FALSE(use_moe_gemv(24, true, 256));
  EXPECT_FALSE(use_moe_gemv(24, true, 512));
  EXPECT_TRUE(use_moe_gemv(48, true, 1024));
  EXPECT_TRUE(use_moe_gemv(96, false, 256));
  EXPECT_TRUE(use_moe_gemv_token_rows(2, 16, true, 256));
  EXPECT_FALSE(use_moe_gemv_token_rows(3, 24, true, 256));
  EXPECT_TRUE(use_moe_gemv_token_rows(3, 24, true, 2048));
  EXPECT_TRUE(use_moe_gemv_token_rows(8, 64, false, 256));
}

// The token rows' codes from the norm: e4m3 experts on the token-row GEMV from two tokens (narrow,
// TP2's share and whole experts alike), not at one token, not past the GEMV, not bf16.
TEST(MoeGemvPlan, E4m3ExpertsWantTheTokenCodesFromTwoTokens) {
  EXPECT_TRUE(moe_gemv_wants_token_codes(2, 16, true, 256));
  EXPECT_TRUE(moe_gemv_wants_token_codes(2, 16, true, 1024));
  EXPECT_TRUE(moe_gemv_wants_token_codes(8, 64, true, 2048));
  EXPECT_TRUE(moe_gemv_wants_token_codes(8, 48, true, 1408));
  EXPECT_FALSE(moe_gemv_wants_token_codes(1, 8, true, 256));
  EXPECT_FALSE(moe_gemv_wants_token_codes(1, 6, true, 1408));
  EXPECT_FALSE(moe_gemv_wants_token_codes(3, 24, true, 256));
  EXPECT_FALSE(moe_gemv_wants_token_codes(2, 16, false, 2048));
}

// The e4m3 down GEMV takes whole tiles where a row is 1, 2 or 4 pieces of 128 bytes only.
TEST(MoeGemvPlan, WholeTilesOnlyForRowsOfOneTwoOrFourPieces) {
  for (const int64_t k : {128, 256, 512}) EXPECT_TRUE(moe_gemv_whole_tiles(k, true)) << k;
  for (const int64_t k : {384, 640, 1024, 1408, 2048}) EXPECT_FALSE(moe_gemv_whole_tiles(k, true)) << k;
  EXPECT_FALSE(moe_gemv_whole_tiles(256, false));
}

// gate_up's early (programmatic) launch: kept for bf16 and for e4m3 past 8 tokens, left out for
// e4m3 up to 8 tokens.
TEST(MoeGemvPlan, GateUpEarlyLaunch) {
  EXPECT_TRUE(moe_gemv_gate_up_early_launch(false, 1));
  EXPECT_FALSE(moe_gemv_gate_up_early_launch(true, 1));
  EXPECT_FALSE(moe_gemv_gate_up_early_launch(true, 8));
  EXPECT_TRUE(moe_gemv_gate_up_early_launch(true, 9));
}

// The down grid leaves SMs to the shared experts beside it for e4m3 experts at one or two tokens of
// V2-Lite (6, 12 rows) and V3 (8, 16), not at three (18, 24), not for bf16, not alone; and the grid
// it then plans is smaller (V2-Lite down at one token: 6 slots, 2 CTAs an SM).
TEST(MoeGemvPlan, DownLeavesSmsBesideTheSharedExpertsAtOneOrTwoTokens) {
  constexpr GridPlacement kBeside = GridPlacement::kBeside;
  for (const int64_t rows : {6, 8, 12, 16}) EXPECT_EQ(moe_gemv_down_sms_left(kBeside, true, rows), 16) << rows;
  for (const int64_t rows : {18, 24}) EXPECT_EQ(moe_gemv_down_sms_left(kBeside, true, rows), 0) << rows;
  EXPECT_EQ(moe_gemv_down_sms_left(kBeside, false, 6), 0);
  EXPECT_EQ(moe_gemv_down_sms_left(GridPlacement::kAlone, true, 6), 0);
  EXPECT_EQ(moe_gemv_ctas(kV2LiteDown, 6, kMoeGemvDefault, kSms), 44);
  EXPECT_EQ(moe_gemv_ctas(kV2LiteDown, 6, kMoeGemvDefault, kSms - moe_gemv_down_sms_left(kBeside, true, 6)), 39);
}

}  // namespace
}  // namespace mlaserve::ops::gpu
