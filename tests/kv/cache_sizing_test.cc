// The KV memory sizing helper: real DeepSeek figures and the failure when nothing fits.
#include <gtest/gtest.h>

#include "core/error.h"
#include "kv/cache_sizing.h"

namespace mlaserve {
namespace {

constexpr size_t kGiB = size_t{1} << 30;

TEST(CacheSizing, BlockBytesOfReleasedModels) {
  // MODEL_SPEC.md §4.1: 70,272 bytes per token for V3 (61 layers), 31,104 for V2-Lite, in bf16.
  EXPECT_EQ(latent_block_bytes(61, 576, DType::kBF16), 70272u * 64);
  EXPECT_EQ(latent_block_bytes(27, 576, DType::kBF16), 31104u * 64);
  EXPECT_EQ(latent_block_bytes(3, 576, DType::kF32), 3u * 576 * 4 * 64);
}

TEST(CacheSizing, BudgetIsUtilizationOfTotalMinusWhatIsInUse) {
  // 80 GiB card, 30 GiB taken by weights and workspace, 0.9: 72 - 30 = 42 GiB for the cache.
  CacheSizingInput in{80 * kGiB, 50 * kGiB, 0.9, latent_block_bytes(27, 576, DType::kBF16)};
  const double budget = 0.9 * 80 * kGiB - 30.0 * kGiB;
  EXPECT_EQ(num_cache_blocks(in), static_cast<int64_t>(budget / static_cast<double>(in.block_bytes)));
  in.utilization = 1.0;
  EXPECT_EQ(num_cache_blocks(in), static_cast<int64_t>(50 * kGiB / in.block_bytes));
}

TEST(CacheSizing, FailsWhenNotOneBlockFits) {
  CacheSizingInput in{80 * kGiB, 8 * kGiB, 0.9, 4 << 20};  // 72 GiB used, 0.9 allows 72 GiB
  EXPECT_THROW(num_cache_blocks(in), Error);
  in.free_bytes = 8 * kGiB + (4 << 20);
  EXPECT_EQ(num_cache_blocks(in), 1);
  EXPECT_THROW(num_cache_blocks({kGiB, 2 * kGiB, 0.9, 1}), Error);  // free > total
  EXPECT_THROW(num_cache_blocks({kGiB, kGiB, 0.0, 1}), Error);
  EXPECT_THROW(num_cache_blocks({kGiB, kGiB, 1.5, 1}), Error);
  EXPECT_THROW(num_cache_blocks({kGiB, kGiB, 0.9, 0}), Error);
}

}  // namespace
}  // namespace mlaserve
