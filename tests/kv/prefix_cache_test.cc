// PrefixCache: chain hashes, lookups that check tokens and the parent entry (so colliding hashes
// never give a wrong hit), duplicates and erasure.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "kv/latent_cache.h"
#include "kv/prefix_cache.h"

namespace mlaserve {
namespace {

std::vector<int32_t> block(int32_t first) {
  std::vector<int32_t> t(static_cast<size_t>(kCacheBlockSize));
  std::iota(t.begin(), t.end(), first);
  return t;
}

TEST(PrefixCache, ChainHashCoversThePrefix) {
  const std::vector<int32_t> a = block(0), b = block(1);
  EXPECT_EQ(hash_block_tokens(0, a), hash_block_tokens(0, a));
  EXPECT_NE(hash_block_tokens(0, a), hash_block_tokens(0, b));
  EXPECT_NE(hash_block_tokens(1, a), hash_block_tokens(2, a));  // same tokens, other prefix
}

TEST(PrefixCache, FindsAChainBlockByBlock) {
  PrefixCache cache(8);
  const std::vector<int32_t> t0 = block(0), t1 = block(100);
  const uint64_t h0 = hash_block_tokens(0, t0), h1 = hash_block_tokens(h0, t1);
  PrefixCache::Insert i0 = cache.insert(h0, 0, t0, 3);
  ASSERT_TRUE(i0.inserted);
  PrefixCache::Insert i1 = cache.insert(h1, i0.serial, t1, 5);
  ASSERT_TRUE(i1.inserted);
  EXPECT_NE(i0.serial, i1.serial);

  auto hit0 = cache.find(h0, 0, t0);
  ASSERT_TRUE(hit0);
  EXPECT_EQ(hit0->block, 3);
  auto hit1 = cache.find(h1, hit0->serial, t1);
  ASSERT_TRUE(hit1);
  EXPECT_EQ(hit1->block, 5);
  EXPECT_FALSE(cache.find(h1, 0, t1));          // wrong parent
  EXPECT_FALSE(cache.find(h1, i0.serial, t0));  // wrong tokens
  EXPECT_TRUE(cache.contains(3));
  EXPECT_FALSE(cache.contains(4));
}

TEST(PrefixCache, CollidingHashesAreToldApartByTokensAndParent) {
  PrefixCache cache(8);
  const std::vector<int32_t> a = block(0), b = block(7);
  const uint64_t h = 42;  // the same hash for different contents: a collision
  PrefixCache::Insert ia = cache.insert(h, 0, a, 1);
  PrefixCache::Insert ib = cache.insert(h, 0, b, 2);
  PrefixCache::Insert ic = cache.insert(h, ia.serial, a, 3);  // same tokens, other parent
  ASSERT_TRUE(ia.inserted && ib.inserted && ic.inserted);
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.find(h, 0, a)->block, 1);
  EXPECT_EQ(cache.find(h, 0, b)->block, 2);
  EXPECT_EQ(cache.find(h, ia.serial, a)->block, 3);
  EXPECT_FALSE(cache.find(h, ib.serial, a));
}

TEST(PrefixCache, DuplicateContentKeepsTheFirstEntry) {
  PrefixCache cache(4);
  const std::vector<int32_t> a = block(0);
  const uint64_t h = hash_block_tokens(0, a);
  PrefixCache::Insert first = cache.insert(h, 0, a, 0);
  PrefixCache::Insert again = cache.insert(h, 0, a, 1);
  EXPECT_FALSE(again.inserted);
  EXPECT_EQ(again.serial, first.serial);
  EXPECT_FALSE(cache.contains(1));
  EXPECT_EQ(cache.find(h, 0, a)->block, 0);
}

TEST(PrefixCache, EraseDropsOnlyThatBlocksEntryAndSerialsAreNotReused) {
  PrefixCache cache(4);
  const std::vector<int32_t> a = block(0);
  const uint64_t h = 9;
  PrefixCache::Insert e1 = cache.insert(h, 0, a, 0);
  ASSERT_TRUE(cache.insert(h, e1.serial, a, 1).inserted);
  cache.erase(0);
  cache.erase(0);  // no entry: no-op
  EXPECT_FALSE(cache.find(h, 0, a));
  EXPECT_EQ(cache.find(h, e1.serial, a)->block, 1);  // an orphan, unreachable from a new root
  PrefixCache::Insert e3 = cache.insert(h, 0, a, 0);  // recomputed: a new serial
  EXPECT_NE(e3.serial, e1.serial);
  EXPECT_FALSE(cache.find(h, e3.serial, a));  // the orphan does not attach to the new parent
  EXPECT_EQ(cache.size(), 2u);
}

}  // namespace
}  // namespace mlaserve
