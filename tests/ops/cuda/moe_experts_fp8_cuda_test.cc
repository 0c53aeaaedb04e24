// The grouped block-FP8 MoE GEMM (our kernels), the FP8 experts' layer, the GEMV and the
// quantised-rows path on the GPU against their CPU references: small problems for
// compute-sanitizer (every tile configuration), then V2-Lite and V3 shapes. CUTLASS's grouped kernel:
// moe_experts_fp8_cutlass_cuda_test.cc. The fixture, the references and the tolerances:
// moe_experts_fp8_cuda_fixture.h.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "moe_experts_fp8_cuda_fixture.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/moe_experts_gemv_heuristics.h"
#include "ops/cuda/moe_grouped_gemm_fp8_sm89_heuristics.h"

namespace mlaserve::ops::moe_fp8_test {

// ---- small cases (also run under compute-sanitizer): every tile configuration ----------------

// The grouped GEMM's decode tiles (forced, as the BF16 tests force them).
TEST_F(MoeFp8Cuda, SmallDecodeTiles) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, {0, 2, 3, 4, 6, 7}, seed);
  check_layer({1, 0, 3, 2, 0, 0, 3, 1}, seed + 1, /*check_all=*/true, MoeExpertsPath::kGroupedGemm);
  check_gemms({0, 0, 0, 0, 0, 0, 0, 10}, seed + 2, /*check_all=*/true, /*every_kernel=*/true);
}

// The grouped GEMV (moe_experts_gemv.cuh) beside the grouped GEMMs (check_layer_paths): K = 512
// and 256 (4 and 2 scale groups a row: some warps have none). Experts of 1 .. 3 rows, through the
// dispatch too; a share of experts 2 .. 5; passes of 8 rows (experts of 10 and 17 rows); one row;
// one expert's share at the end of the offsets; a share with no rows (out untouched); UE8M0
// activation scales are not covered here (the quantiser's arithmetic is fp8_quant.cuh's, tested
// with them in fp8_quant_cuda_test.cc).
TEST_F(MoeFp8Cuda, SmallGemv) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, {0, 2, 3, 4, 6, 7}, seed);
  check_layer({1, 0, 3, 2, 0, 0, 3, 1}, seed + 1, /*check_all=*/true);  // kAuto: the GEMV
  check_layer_paths({1, 0, 3, 2, 0, 0, 3, 1}, seed + 2, true, 0, 8);
  check_layer_paths({1, 0, 3, 2, 0, 0, 3, 1}, seed + 3, true, 2, 6);
  check_layer_paths({0, 0, 10, 0, 0, 0, 0, 17}, seed + 4, true, 0, 8);
  check_layer_paths({1, 0, 0, 0, 0, 0, 0, 0}, seed + 5, true, 0, 8);
  check_layer_paths({2, 0, 0, 3, 0, 0, 0, 1}, seed + 6, true, 7, 8);
  check_layer_paths({2, 0, 0, 0, 0, 0, 1, 0}, seed + 7, true, 2, 6);
}

// The down GEMV dealing whole tiles to its warps where K = Im is 1, 2 or 4 pieces a row
// (moe_gemv_whole_tiles: Im 128 and 512 here, 256 in SmallGemv), and round robin at Im 384 (3
// pieces) beside them: tiles of one row's piece each, runs of a few tiles over 8 warps (some
// warps with none), passes of 8 rows (experts of 10 and 17 rows).
TEST_F(MoeFp8Cuda, SmallGemvWholeTiles) {
  for (const int64_t im : {128, 512, 384}) {
    SCOPED_TRACE("Im " + std::to_string(im));
    EXPECT_EQ(gpu::moe_gemv_whole_tiles(im, true), im != 384);
    const uint64_t seed = fresh_seed();
    make_weights(MoeShape{8, 512, im, 2}, {0, 2, 3, 4, 6, 7}, seed);
    check_layer_paths({1, 0, 3, 2, 0, 0, 3, 1}, seed + 1, true, 0, 8);
    check_layer_paths({0, 0, 10, 0, 0, 0, 0, 17}, seed + 2, true, 0, 8);
  }
}

// The decode tile at four CTAs an SM (use_four_ctas_decode_tile): 64 experts of one row each, 8
// column runs an expert (512 CTAs: past three CTAs an SM of 132 SMs, within four), through the
// SwiGLU epilogue (K 1152, Im 256) and then the plain one (H 512 over K 1152); the other product of
// each shape keeps three CTAs an SM.
TEST_F(MoeFp8Cuda, SmallDecodeTileFourCtasAnSm) {
  if (!sm89::use_four_ctas_decode_tile(64 * 8, gpu::device_sm_count())) {
    GTEST_SKIP() << "512 CTAs fit three an SM or exceed four on this GPU's " << gpu::device_sm_count() << " SMs";
  }
  std::vector<int64_t> all(64);
  for (int64_t e = 0; e < 64; ++e) all[static_cast<size_t>(e)] = e;
  for (const MoeShape& s : {MoeShape{64, 1152, 256, 2}, MoeShape{64, 512, 1152, 2}}) {
    const uint64_t seed = fresh_seed();
    make_weights(s, all, seed);
    check_gemms(std::vector<int32_t>(64, 1), seed + 1, /*check_all=*/true, /*every_kernel=*/false);
  }
}

TEST_F(MoeFp8Cuda, SmallMidTiles) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, {0, 2, 3, 4, 6, 7}, seed);
  check_layer({0, 0, 150, 64, 1, 0, 40, 1}, seed + 1, /*check_all=*/true);
  check_gemms({0, 0, 150, 64, 1, 0, 40, 1}, seed + 2, /*check_all=*/true, /*every_kernel=*/true);
}

TEST_F(MoeFp8Cuda, SmallPrefillTiles) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, {0, 2, 3, 4, 6, 7}, seed);
  check_layer({128, 0, 129, 500, 1, 0, 266, 0}, seed + 1, /*check_all=*/true);
  check_gemms({128, 0, 129, 500, 1, 0, 266, 0}, seed + 2, /*check_all=*/true, /*every_kernel=*/true);
}

// The wgmma kernel's persistent loop: 42 M tiles x 4 N tiles = 168 tiles, more than the SMs, so
// CTAs run several tiles through one pipeline; tiles of 1, 65 and 127 rows, empty experts.
TEST_F(MoeFp8Cuda, SmallWgmmaPersistent) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, {0, 2, 3, 4, 6, 7}, seed);
  const std::vector<int32_t> counts = {700, 0, 65, 1500, 1, 0, 2100, 639};
  check_layer(counts, seed + 1, /*check_all=*/true);
  check_gemms(counts, seed + 2, /*check_all=*/true, /*every_kernel=*/true);
}

// The persistent walk with its pair swap (pair_swapped) is a permutation of the tiles for every
// grid size, even or odd, and every tile count: each tile taken by exactly one CTA in one round.
TEST(MoeFp8Walk, PairSwapTakesEveryTileOnce) {
  for (int stride = 1; stride <= 140; ++stride) {
    for (int tiles = 0; tiles <= 700; tiles += tiles < 20 ? 1 : 37) {
      std::vector<int> taken(static_cast<size_t>(tiles), 0);
      for (int cta = 0; cta < stride; ++cta) {
        for (int t = cta, round = 0; t < tiles; t += stride, ++round) {
          const int u = sm90::moe_fp8::pair_swapped(t, round, stride, tiles);
          ASSERT_TRUE(u >= 0 && u < tiles) << "stride " << stride << ", tiles " << tiles << ", t " << t;
          ++taken[static_cast<size_t>(u)];
        }
      }
      for (int u = 0; u < tiles; ++u) {
        ASSERT_EQ(taken[static_cast<size_t>(u)], 1) << "stride " << stride << ", tiles " << tiles << ", tile " << u;
      }
    }
  }
  EXPECT_EQ(sm90::moe_fp8::pair_swapped(4, 1, 132, 300), 5);  // swapped on odd rounds of an even stride
  EXPECT_EQ(sm90::moe_fp8::pair_swapped(4, 2, 132, 300), 4);
  EXPECT_EQ(sm90::moe_fp8::pair_swapped(4, 1, 131, 300), 4);  // never with an odd one
}

TEST_F(MoeFp8Cuda, SmallNoRowsIsANoOp) {
  make_weights(kSmall, {0}, fresh_seed());
  const Tensor x = Tensor::empty({0, kSmall.hidden}, DType::kBF16, Device::kCUDA);
  const Tensor off = testing::i32_tensor(std::vector<int32_t>(kSmall.experts + 1, 0), {kSmall.experts + 1});
  Tensor out = Tensor::empty({0, kSmall.hidden}, DType::kBF16, Device::kCUDA);
  Tensor hidden = Tensor::empty({0, kSmall.inter}, DType::kBF16, Device::kCUDA);
  moe_experts(x, off.to(Device::kCUDA), gpu_, ActQuantParams{}, hidden, out, Stream{stream_});
  MLA_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

// ---- DeepSeek shapes -------------------------------------------------------------------------

// V2-Lite: 24 of 64 experts have weights; T = 1 (the layer through the GEMV, the GEMMs with the
// mma.sync decode tiles), 64 (mma.sync decode tiles), 256 and 2048 (the wgmma kernel, both tile
// widths).
TEST_F(MoeFp8Cuda, V2Lite) { check_model(kV2Lite, 24, {1, 64, 256, 2048}); }

// The grouped GEMV at V2-Lite's and V3's shapes (check_gemv_model): 1 .. 4 tokens, all experts and
// a share.
TEST_F(MoeFp8Cuda, V2LiteGemv) { check_gemv_model(kV2Lite); }
TEST_F(MoeFp8Cuda, V3Gemv) { check_gemv_model(kV3); }

// V3: 10 of 256 experts have weights (11 GB of stacked e4m3 on the GPU); T = 1, 64 (mma.sync)
// and 1024 (wgmma, ~800 rows per expert: both tile widths). T = 4096 made the case run past 95 s
// on the host (random inputs of 235M values per GEMM check, drawn one by one); the wgmma tiles
// it would add are those of 1024 rows, repeated.
TEST_F(MoeFp8Cuda, V3) { check_model(kV3, 10, {1, 64, 1024}); }

// A V3 rank's channel share of every expert under TP8 (K = 256 in down: two scale blocks): the
// GEMV, the decode tiles and the wgmma kernel.
TEST_F(MoeFp8Cuda, V3Tp8ChannelShare) { check_model(testing::kV3Tp8Channels, 64, {1, 8, 64, 1024}); }
TEST_F(MoeFp8Cuda, V3Tp8ChannelShareGemv) { check_gemv_model(testing::kV3Tp8Channels); }

// The quantised-rows path (check_quantized_rows) at a V2-Lite prefill step (T 1600, P 9600: the
// case measured, NOTES-engine) and at V3's shapes (T 700, P 5600), bit for bit against the bf16
// rows' path; and at the GEMV's limit the dispatch keeps the bf16 rows (the GEMV quantises itself).
// The token-rows GEMV against the GEMV on gathered rows, bit for bit (moe_token_rows_check.h): the
// small shape at 1, 3, 8 and 12 tokens and with experts of more rows than tokens (passes); V2-Lite
// at 1 .. 8, 12 and 16 tokens, V3 at 1, 2, 4, 8 and 12 (all staged up to 2, indexed past that;
// from the codes at every count).
TEST_F(MoeFp8Cuda, SmallTokenRows) { check_token_rows(kSmall, kSmall.experts, {1, 3, 8, 12}, true); }
TEST_F(MoeFp8Cuda, V2LiteTokenRows) { check_token_rows(kV2Lite, 12, {1, 2, 3, 4, 5, 6, 7, 8, 12, 16}, false); }
TEST_F(MoeFp8Cuda, V3TokenRows) { check_token_rows(kV3, 12, {1, 2, 4, 8, 12}, false); }

TEST_F(MoeFp8Cuda, QuantizedRowsV2LitePrefill) { check_quantized_rows(kV2Lite, 16, 1600); }
TEST_F(MoeFp8Cuda, QuantizedRowsV3) { check_quantized_rows(kV3, 10, 700); }
TEST_F(MoeFp8Cuda, SmallQuantizedRows) { check_quantized_rows(kSmall, 8, 40); }
TEST_F(MoeFp8Cuda, SmallQuantizedRowsOnlyPastTheGemv) {
  make_weights(kSmall, {0}, fresh_seed());
  ASSERT_TRUE(gpu::narrow_fp8_experts(true, kSmall.inter));  // Im 256: the GEMV up to 16 rows
  const int64_t gemv_rows = gpu::kMoeGemvNarrowMaxRowsFp8;
  EXPECT_FALSE(moe_experts_takes_quantized_rows(Device::kCUDA, gemv_rows, gpu_));
  EXPECT_TRUE(moe_experts_takes_quantized_rows(Device::kCUDA, gemv_rows + 1, gpu_));
  EXPECT_FALSE(moe_experts_takes_quantized_rows(Device::kCPU, gemv_rows + 1, gpu_));
}


}  // namespace mlaserve::ops::moe_fp8_test
