// KvCacheManager: prefix hits reuse blocks (and only whole, computed blocks), allocation is all
// or nothing, eviction forgets the evicted block, and a randomised run checks, against a
// simulated cache that records which token each slot holds, that every hit holds exactly the
// sequence's tokens, that written blocks are never shared, and that no block leaks.
#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <vector>

#include "kv/kv_cache_manager.h"

namespace mlaserve {
namespace {

constexpr int64_t kB = kCacheBlockSize;

std::vector<int32_t> iota_tokens(int64_t n, int32_t first = 0) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), first);
  return t;
}

TEST(KvCacheManager, AllocateIsAllOrNothing) {
  KvCacheManager kv({4, true});
  BlockTable a, b;
  ASSERT_TRUE(kv.allocate(a, 3 * kB));
  EXPECT_EQ(a.blocks.size(), 3u);
  EXPECT_TRUE(kv.allocate(a, 3 * kB));  // already covered
  EXPECT_FALSE(kv.allocate(b, 2 * kB));
  EXPECT_TRUE(b.empty());
  EXPECT_TRUE(kv.allocate(b, 1));
  EXPECT_EQ(kv.num_available_blocks(), 0);
  kv.release(a);
  kv.release(b);
  EXPECT_EQ(kv.num_available_blocks(), 4);
}

TEST(KvCacheManager, ASecondRequestReusesTheComputedFullBlocksOfTheFirst) {
  KvCacheManager kv({16, true});
  const std::vector<int32_t> first = iota_tokens(3 * kB + 8);
  BlockTable a;
  EXPECT_EQ(kv.acquire_cached_prefix(a, first, first.size() - 1), 0);
  ASSERT_TRUE(kv.allocate(a, static_cast<int64_t>(first.size())));
  kv.index_computed_blocks(a, first, 2 * kB + 10);  // rows written so far: 2 full blocks
  EXPECT_EQ(a.num_indexed, 2);

  std::vector<int32_t> second = iota_tokens(3 * kB);
  second[2 * kB + 5] = 9999;  // differs in the third block
  BlockTable b;
  EXPECT_EQ(kv.acquire_cached_prefix(b, second, second.size() - 1), 2 * kB);
  EXPECT_EQ(b.blocks, std::vector<BlockId>(a.blocks.begin(), a.blocks.begin() + 2));
  EXPECT_EQ(kv.pool().ref_count(a.blocks[0]), 2);

  kv.index_computed_blocks(a, first, static_cast<int64_t>(first.size()));
  BlockTable c;  // the whole first prompt again: the hit stops short of its last token
  EXPECT_EQ(kv.acquire_cached_prefix(c, first, first.size() - 1), 3 * kB);
  BlockTable d;
  const std::vector<int32_t> exact = iota_tokens(3 * kB);
  EXPECT_EQ(kv.acquire_cached_prefix(d, exact, exact.size() - 1), 2 * kB);

  for (BlockTable* t : {&a, &b, &c, &d}) kv.release(*t);
  EXPECT_EQ(kv.num_available_blocks(), 16);
  EXPECT_EQ(kv.pool().num_evictable(), 3);
}

TEST(KvCacheManager, EvictedBlocksNoLongerHit) {
  KvCacheManager kv({2, true});
  const std::vector<int32_t> t = iota_tokens(2 * kB);
  BlockTable a;
  ASSERT_TRUE(kv.allocate(a, 2 * kB));
  kv.index_computed_blocks(a, t, 2 * kB);
  kv.release(a);  // both cached; the tail block is released first, so evicted first
  BlockTable other;
  ASSERT_TRUE(kv.allocate(other, 1));
  EXPECT_EQ(kv.prefix_cache().size(), 1u);
  BlockTable b;
  EXPECT_EQ(kv.acquire_cached_prefix(b, t, 2 * kB), kB);  // the head survived
  kv.release(b);
  ASSERT_TRUE(kv.allocate(other, kB + 1));
  EXPECT_EQ(kv.prefix_cache().size(), 0u);
  BlockTable c;
  EXPECT_EQ(kv.acquire_cached_prefix(c, t, 2 * kB), 0);
  kv.release(other);
}

TEST(KvCacheManager, PrefixCachingOffNeverHits) {
  KvCacheManager kv({4, false});
  const std::vector<int32_t> t = iota_tokens(2 * kB);
  BlockTable a, b;
  ASSERT_TRUE(kv.allocate(a, 2 * kB));
  kv.index_computed_blocks(a, t, 2 * kB);
  EXPECT_EQ(kv.acquire_cached_prefix(b, t, 2 * kB), 0);
  kv.release(a);
  EXPECT_EQ(kv.pool().num_free(), 4);
}

// Sequences drawn from a few shared prefixes grow, hit, compute and release at random. The
// simulated cache records the token written to each slot; every hit must read back exactly the
// sequence's own tokens, and a slot may only be written through a block with one reference.
TEST(KvCacheManager, RandomWorkloadHitsAreExactAndNothingLeaks) {
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    std::mt19937_64 rng(seed);
    const int32_t num_blocks = 8 + static_cast<int32_t>(rng() % 40);
    KvCacheManager kv({num_blocks, true});
    std::vector<int32_t> slot_token(static_cast<size_t>(num_blocks * kB), -1);
    std::vector<std::vector<int32_t>> prefixes;
    for (int i = 0; i < 4; ++i) {
      std::vector<int32_t> p(static_cast<size_t>(rng() % (3 * kB)));
      for (int32_t& x : p) x = static_cast<int32_t>(rng() % 3);  // few distinct tokens: collisions of content
      prefixes.push_back(p);
    }
    struct Seq {
      std::vector<int32_t> tokens;
      int64_t computed = 0;
      BlockTable table;
    };
    std::vector<Seq> live;
    int64_t hits = 0;
    auto write = [&](Seq& s, int64_t end) {
      for (int64_t p = s.computed; p < end; ++p) {
        const BlockId b = s.table.blocks[static_cast<size_t>(p / kB)];
        ASSERT_EQ(kv.pool().ref_count(b), 1) << "writing into a shared block";
        slot_token[static_cast<size_t>(s.table.slot(p))] = s.tokens[static_cast<size_t>(p)];
      }
      s.computed = end;
      kv.index_computed_blocks(s.table, s.tokens, end);
    };
    for (int step = 0; step < 2000; ++step) {
      const int op = static_cast<int>(rng() % 3);
      if (op == 0) {  // a new sequence: a shared prefix plus its own tail
        Seq s;
        s.tokens = prefixes[rng() % prefixes.size()];
        for (size_t n = 1 + rng() % (2 * kB); n > 0; --n) s.tokens.push_back(static_cast<int32_t>(rng() % 3));
        const int64_t hit = kv.acquire_cached_prefix(s.table, s.tokens, static_cast<int64_t>(s.tokens.size()) - 1);
        ASSERT_EQ(hit % kB, 0);
        ASSERT_LT(hit, static_cast<int64_t>(s.tokens.size()));
        for (int64_t p = 0; p < hit; ++p) {
          ASSERT_EQ(slot_token[static_cast<size_t>(s.table.slot(p))], s.tokens[static_cast<size_t>(p)])
              << "a prefix hit holds other tokens";
        }
        hits += hit;
        s.computed = hit;
        live.push_back(std::move(s));
      } else if (op == 1 && !live.empty()) {  // compute a chunk (and maybe append a token)
        Seq& s = live[rng() % live.size()];
        if (s.computed == static_cast<int64_t>(s.tokens.size())) s.tokens.push_back(static_cast<int32_t>(rng() % 3));
        const int64_t end = std::min<int64_t>(static_cast<int64_t>(s.tokens.size()),
                                              s.computed + 1 + static_cast<int64_t>(rng() % kB));
        if (kv.allocate(s.table, end)) write(s, end);
      } else if (op == 2 && !live.empty()) {  // finish, abort or preempt
        const size_t i = rng() % live.size();
        kv.release(live[i].table);
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
      }
      // Reference counts equal the number of live tables holding each block.
      std::vector<int32_t> refs(static_cast<size_t>(num_blocks), 0);
      for (const Seq& s : live) {
        for (BlockId b : s.table.blocks) ++refs[static_cast<size_t>(b)];
      }
      for (BlockId b = 0; b < num_blocks; ++b) ASSERT_EQ(kv.pool().ref_count(b), refs[static_cast<size_t>(b)]);
    }
    for (Seq& s : live) kv.release(s.table);
    EXPECT_EQ(kv.num_available_blocks(), num_blocks);
    EXPECT_GT(hits, 0) << "seed " << seed << ": the workload never hit the prefix cache";
  }
}

}  // namespace
}  // namespace mlaserve
