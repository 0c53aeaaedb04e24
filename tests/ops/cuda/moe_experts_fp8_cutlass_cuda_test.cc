// CUTLASS's grouped blockwise-FP8 kernel (MoeFp8Kernel::kCutlassGrouped, plain epilogue only; kAuto's
// for large down products) through the product check of moe_experts_fp8_cuda_fixture.h: groups of
// one row, partial M tiles, empty experts, a rank's share, 64 and 256 experts, a CUDA graph replay,
// the SwiGLU epilogue refused, and the benchmark's 4 x 8192 x 4096 x 7168 shape.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "moe_experts_fp8_cuda_fixture.h"

namespace mlaserve::ops::moe_fp8_test {

// The small routings of testing::kSmallGroupCases (moe_test_pool.h): groups of one row, partial M
// tiles, empty experts, a single row in all, more tiles than SMs (42 M tiles of 128 rows x 4 N
// tiles), and shares of the experts (views; the other experts' rows must stay poisoned).
TEST_F(MoeFp8Cuda, SmallCutlassGrouped) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, testing::kSmallPool, seed);
  for (size_t i = 0; i < testing::kSmallGroupCases.size(); ++i) {
    const testing::RoutingCase& c = testing::kSmallGroupCases[i];
    check_cutlass(c.counts, seed + 1 + 2 * i, /*check_all=*/true, c.e0, c.e1);
  }
}

// 64 and 256 experts (the group scheduler walks the groups' tile counts 32 at a time): most of
// them empty, the others of 1 .. 300 rows.
TEST_F(MoeFp8Cuda, SmallCutlassManyExperts) {
  for (const int64_t experts : {64, 256}) {
    const uint64_t seed = fresh_seed();
    std::mt19937_64 rng(seed);
    const testing::SparseRouting routing = testing::sparse_routing(experts, rng);
    make_weights(MoeShape{experts, 512, 256, 2}, routing.pool, seed);
    check_cutlass(routing.counts, seed + 1, /*check_all=*/true);
    check_cutlass(routing.counts, seed + 3, true, experts / 4, 3 * experts / 4);
  }
}

// Captured in a CUDA graph (global mode: no allocation, no synchronisation, after one eager call)
// and replayed twice: the same bits as the eager call.
TEST_F(MoeFp8Cuda, SmallCutlassGraphCapture) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  make_weights(kSmall, {0, 2, 3, 4, 6, 7}, seed);
  const std::vector<int32_t> offsets = offsets_of({130, 0, 3, 64, 1, 0, 200, 0});
  const int64_t rows = offsets.back(), k = kSmall.inter, n = kSmall.hidden;
  Tensor a_q = Tensor::empty({rows, k}, DType::kF8E4M3, Device::kCUDA);
  Tensor a_s = Tensor::empty({rows, k / 128}, DType::kF32, Device::kCUDA);
  upload(random_e4m3({rows, k}, seed + 1), a_q);
  upload(random_scales({rows, k / 128}, seed + 2, 0x1p-6f), a_s);
  const Tensor off_gpu = testing::i32_tensor(offsets, {kSmall.experts + 1}).to(Device::kCUDA);
  Tensor coop = Tensor::empty({rows, n}, DType::kBF16, Device::kCUDA);
  const std::vector<Tensor> eager = eager_then_graph(
      [&] {
        moe_grouped_gemm_fp8_cuda(a_q, a_s, off_gpu, gpu_.down, gpu_.down_scale, false, coop, stream_,
                                  MoeFp8Kernel::kCutlassGrouped);
      },
      {&coop});
  for (const Tensor& t : eager) EXPECT_EQ(count_nonfinite(t), 0) << "outputs left unwritten";
}

// The SwiGLU epilogue is not instantiated: forcing the CUTLASS kernel with it throws.
TEST_F(MoeFp8Cuda, SmallCutlassRejectsSwiGlu) {
  make_weights(kSmall, {0}, fresh_seed());
  const std::vector<int32_t> offsets = offsets_of({4, 0, 0, 0, 0, 0, 0, 0});
  const Tensor a_q = poisoned_gpu({4, kSmall.hidden}, DType::kF8E4M3, stream_);
  const Tensor a_s = poisoned_gpu({4, kSmall.hidden / 128}, DType::kF32, stream_);
  const Tensor off_gpu = testing::i32_tensor(offsets, {kSmall.experts + 1}).to(Device::kCUDA);
  Tensor out = Tensor::empty({4, kSmall.inter}, DType::kBF16, Device::kCUDA);
  EXPECT_THROW(moe_grouped_gemm_fp8_cuda(a_q, a_s, off_gpu, gpu_.gate_up, gpu_.gate_up_scale, /*swiglu=*/true, out,
                                         stream_, MoeFp8Kernel::kCutlassGrouped),
               Error);
}

// kAuto's rule for the plain product (use_cutlass_grouped, moe_grouped_gemm_fp8_sm90.h) at the
// points it was measured at: CUTLASS at one whole tile an expert and past two, not below one nor
// between one and two.
TEST(MoeFp8KernelRule, CutlassAtOneWholeTileAndPastTwo) {
  using sm90::moe_fp8::use_cutlass_grouped;
  EXPECT_FALSE(use_cutlass_grouped(false, 6144, 64));    // V2-Lite T 1024: 96 rows an expert
  EXPECT_FALSE(use_cutlass_grouped(false, 9600, 64));    // T 1600: 150
  EXPECT_FALSE(use_cutlass_grouped(false, 14400, 64));   // T 2400: 225
  EXPECT_TRUE(use_cutlass_grouped(false, 24576, 64));    // T 4096: 384
  EXPECT_FALSE(use_cutlass_grouped(false, 16384, 256));  // V3 T 2048: 64
  EXPECT_TRUE(use_cutlass_grouped(false, 32768, 256));   // T 4096: 128
  EXPECT_FALSE(use_cutlass_grouped(false, 49152, 256));  // T 6144: 192
  EXPECT_TRUE(use_cutlass_grouped(false, 131072, 256));  // T 16384: 512
  EXPECT_FALSE(use_cutlass_grouped(true, 131072, 256));  // SwiGLU: never
}

// The mma.sync kernel's wide decode tile (use_wide_decode_tile) for V3's experts, not V2-Lite's or
// the Small ones (so MoeFp8Cuda.V3 runs it at its decode sizes, the Small cases the 16 x 64 tile).
TEST(MoeFp8KernelRule, WideDecodeTileForV3SizedExperts) {
  using sm89::use_wide_decode_tile;
  EXPECT_TRUE(use_wide_decode_tile(2 * 2048, 7168));   // V3 gate_up
  EXPECT_TRUE(use_wide_decode_tile(7168, 2048));       // V3 down
  EXPECT_FALSE(use_wide_decode_tile(2 * 1408, 2048));  // V2-Lite gate_up
  EXPECT_FALSE(use_wide_decode_tile(2048, 1408));      // V2-Lite down
  EXPECT_FALSE(use_wide_decode_tile(2 * 256, 512));    // Small
}

// The mma.sync kernel's column runs (column_run): whole experts of V2, V2-Lite and V3 keep one
// column tile a CTA; a TP rank's channel share (K of 8 groups or fewer) takes powers of two up to
// 32 k-tiles a CTA, as far as the tiles divide.
TEST(MoeFp8KernelRule, ColumnRunsOnlyForShortK) {
  using sm89::column_run;
  EXPECT_EQ(column_run(7168 / 128, 4096 / 64), 1);   // V3 gate_up, the wide decode tile
  EXPECT_EQ(column_run(2048 / 128, 7168 / 128), 1);  // V3 down
  EXPECT_EQ(column_run(1408 / 128, 2048 / 64), 1);   // V2-Lite down (11 groups)
  EXPECT_EQ(column_run(1536 / 128, 5120 / 64), 1);   // V2 down (12 groups)
  EXPECT_EQ(column_run(256 / 128, 7168 / 64), 16);   // V3 TP8 channel share, down
  EXPECT_EQ(column_run(512 / 128, 7168 / 64), 8);    // TP4
  EXPECT_EQ(column_run(1024 / 128, 7168 / 64), 4);   // TP2
  EXPECT_EQ(column_run(2, 6), 2);                    // as far as the tiles divide
  EXPECT_EQ(column_run(2, 7), 1);
}

// The decode tile at four CTAs an SM only where the grid then fits one wave and does not at three:
// a V3 TP8 channel rank's gate_up at 8 tokens (64 experts x 8 column tiles), not at 4 or 12.
TEST(MoeFp8KernelRule, FourCtasAnSmWhereThatMakesOneWave) {
  using sm89::use_four_ctas_decode_tile;
  EXPECT_FALSE(use_four_ctas_decode_tile(396, 132));
  EXPECT_TRUE(use_four_ctas_decode_tile(397, 132));
  EXPECT_TRUE(use_four_ctas_decode_tile(528, 132));
  EXPECT_FALSE(use_four_ctas_decode_tile(529, 132));
  EXPECT_FALSE(use_four_ctas_decode_tile(32 * 8, 132));
  EXPECT_TRUE(use_four_ctas_decode_tile(64 * 8, 132));
  EXPECT_FALSE(use_four_ctas_decode_tile(96 * 8, 132));
}

// The benchmark's shape (moe_fp8_bench --sections gemm): 4 experts x 8192 rows, N 4096, K 7168,
// plain; the first, last and a random row of each expert checked. Down-projection weights only.
TEST_F(MoeFp8Cuda, CutlassBenchShape) {
  const uint64_t seed = fresh_seed();
  make_weights(MoeShape{4, 4096, 7168, 1}, {0, 1, 2, 3}, seed, /*down_only=*/true);
  check_cutlass({8192, 8192, 8192, 8192}, seed + 1, /*check_all=*/false);
}

}  // namespace mlaserve::ops::moe_fp8_test
