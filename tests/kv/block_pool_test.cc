// BlockPool: reference counts, the free list, LRU eviction of cached blocks, and a randomised
// run of every operation against a plain model of the three block states.
#include <gtest/gtest.h>

#include <algorithm>
#include <list>
#include <random>
#include <set>

#include "core/error.h"
#include "kv/block_pool.h"

namespace mlaserve {
namespace {

TEST(BlockPool, HandsOutEveryBlockOnceThenFails) {
  BlockPool pool(5);
  std::set<BlockId> seen;
  for (int i = 0; i < 5; ++i) {
    BlockPool::Allocation a = pool.allocate();
    EXPECT_FALSE(a.evicted);
    EXPECT_EQ(pool.ref_count(a.block), 1);
    seen.insert(a.block);
  }
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_EQ(pool.num_available(), 0);
  EXPECT_THROW(pool.allocate(), Error);
}

TEST(BlockPool, DoubleFreeAndRetainOfFreeBlockFail) {
  BlockPool pool(2);
  const BlockId b = pool.allocate().block;
  pool.release(b);
  EXPECT_THROW(pool.release(b), Error);
  EXPECT_THROW(pool.retain(b), Error);
  EXPECT_THROW(pool.release(7), Error);
  EXPECT_THROW(pool.mark_cached(b), Error);
}

TEST(BlockPool, SharedBlockIsFreedByItsLastReference) {
  BlockPool pool(2);
  const BlockId b = pool.allocate().block;
  pool.retain(b);
  EXPECT_EQ(pool.ref_count(b), 2);
  pool.release(b);
  EXPECT_EQ(pool.num_free(), 1);
  pool.release(b);
  EXPECT_EQ(pool.num_free(), 2);
  EXPECT_EQ(pool.ref_count(b), 0);
}

TEST(BlockPool, FreeBlocksGoFirstThenCachedOnesLeastRecentlyReleasedFirst) {
  BlockPool pool(4);
  std::vector<BlockId> b;
  for (int i = 0; i < 4; ++i) b.push_back(pool.allocate().block);
  for (int i = 0; i < 3; ++i) pool.mark_cached(b[i]);
  pool.release(b[2]);
  pool.release(b[0]);
  pool.release(b[1]);
  pool.release(b[3]);  // not cached: free
  EXPECT_EQ(pool.num_free(), 1);
  EXPECT_EQ(pool.num_evictable(), 3);
  EXPECT_EQ(pool.num_available(), 4);

  BlockPool::Allocation a = pool.allocate();
  EXPECT_EQ(a.block, b[3]);
  EXPECT_FALSE(a.evicted);
  for (BlockId want : {b[2], b[0], b[1]}) {
    a = pool.allocate();
    EXPECT_EQ(a.block, want);
    EXPECT_TRUE(a.evicted);
    EXPECT_FALSE(pool.is_cached(a.block));
  }
}

TEST(BlockPool, RetainTakesACachedBlockOutOfTheEvictionOrder) {
  BlockPool pool(3);
  std::vector<BlockId> b;
  for (int i = 0; i < 3; ++i) b.push_back(pool.allocate().block);
  for (BlockId x : b) pool.mark_cached(x);
  for (BlockId x : b) pool.release(x);
  pool.retain(b[0]);  // a prefix-cache hit
  EXPECT_EQ(pool.num_evictable(), 2);
  pool.release(b[0]);  // now the most recently released
  EXPECT_EQ(pool.allocate().block, b[1]);
  EXPECT_EQ(pool.allocate().block, b[2]);
  EXPECT_EQ(pool.allocate().block, b[0]);
}

// Random interleavings of allocate / retain / release / mark_cached against a model: per block
// the reference count and the cached mark, plus the LRU order of cached unreferenced blocks.
TEST(BlockPool, RandomOperationsKeepEveryBlockInExactlyOneState) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    const int32_t n = 1 + static_cast<int32_t>(rng() % 24);
    BlockPool pool(n);
    std::vector<int32_t> refs(n, 0);
    std::vector<bool> cached(n, false);
    std::list<BlockId> lru;  // model of the eviction order
    std::vector<BlockId> held;  // one entry per reference we hold
    for (int step = 0; step < 2000; ++step) {
      const int op = static_cast<int>(rng() % 4);
      if (op == 0 && pool.num_available() > 0) {
        BlockPool::Allocation a = pool.allocate();
        const bool had_free = std::count_if(refs.begin(), refs.end(), [](int r) { return r == 0; }) >
                              static_cast<std::ptrdiff_t>(lru.size());
        ASSERT_EQ(refs[a.block], 0);
        if (had_free) {
          ASSERT_FALSE(a.evicted);
          ASSERT_FALSE(cached[a.block]);
        } else {
          ASSERT_TRUE(a.evicted);
          ASSERT_EQ(a.block, lru.front());
          lru.pop_front();
          cached[a.block] = false;
        }
        refs[a.block] = 1;
        held.push_back(a.block);
      } else if (op == 1 && !held.empty()) {
        const BlockId b = held[rng() % held.size()];
        pool.retain(b);
        ++refs[b];
        held.push_back(b);
      } else if (op == 1 && !lru.empty()) {
        auto it = std::next(lru.begin(), static_cast<std::ptrdiff_t>(rng() % lru.size()));
        pool.retain(*it);
        refs[*it] = 1;
        held.push_back(*it);
        lru.erase(it);
      } else if (op == 2 && !held.empty()) {
        const size_t i = rng() % held.size();
        const BlockId b = held[i];
        held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
        pool.release(b);
        if (--refs[b] == 0 && cached[b]) lru.push_back(b);
      } else if (op == 3 && !held.empty()) {
        const BlockId b = held[rng() % held.size()];
        pool.mark_cached(b);
        cached[b] = true;
      }
      for (BlockId b = 0; b < n; ++b) {
        ASSERT_EQ(pool.ref_count(b), refs[b]) << "block " << b << " at step " << step;
        ASSERT_EQ(pool.is_cached(b), cached[b]) << "block " << b;
      }
      const auto zero = std::count_if(refs.begin(), refs.end(), [](int r) { return r == 0; });
      ASSERT_EQ(pool.num_available(), zero);
      ASSERT_EQ(pool.num_evictable(), static_cast<int32_t>(lru.size()));
    }
    for (BlockId b : held) pool.release(b);
    EXPECT_EQ(pool.num_available(), n);
  }
}

}  // namespace
}  // namespace mlaserve
