// KvCacheManager: the sequences' view of the cache blocks. It grows and empties block tables
// from the BlockPool and keeps the PrefixCache in step with it:
//   - a new (or preempted) sequence first takes the cached blocks that already hold a prefix
//     of its tokens (acquire_cached_prefix), then allocates blocks as its tokens are scheduled;
//   - after a step has written a sequence's rows, its newly full blocks are indexed
//     (index_computed_blocks), so later requests with the same prefix can reuse them;
//   - a finished, aborted or preempted sequence releases its blocks (release): indexed ones stay
//     cached until evicted, least recently released first, the others become free.
// Shared blocks are always full and never written again: a sequence only writes rows past the
// prefix it acquired. This is what makes sharing safe with MLA's latent cache (one row per token
// and layer, the same for every head) without copy-on-write.
#pragma once

#include <cstdint>
#include <span>

#include "kv/block_pool.h"
#include "kv/block_table.h"
#include "kv/prefix_cache.h"

namespace mlaserve {

struct KvCacheOptions {
  int32_t num_blocks = 0;
  bool enable_prefix_caching = true;
};

class KvCacheManager {
 public:
  explicit KvCacheManager(KvCacheOptions options);

  int32_t num_blocks() const { return pool_.num_blocks(); }
  // Blocks that can still be allocated (free, or cached and unreferenced).
  int32_t num_available_blocks() const { return pool_.num_available(); }
  bool prefix_caching() const { return options_.enable_prefix_caching; }

  // For a sequence with an empty table: retains the cached blocks holding the longest prefix of
  // `tokens` that is made of whole blocks and at most max_tokens long, puts them in the table,
  // and returns how many tokens they hold (0 with prefix caching off).
  int64_t acquire_cached_prefix(BlockTable& table, std::span<const int32_t> tokens, int64_t max_tokens);

  // Grows the table to cover num_tokens tokens. All or nothing: returns false, and changes
  // nothing, when the pool cannot supply the blocks.
  bool allocate(BlockTable& table, int64_t num_tokens);

  // Indexes the table's full blocks among the first num_computed tokens of `tokens` (the
  // sequence's tokens; those rows are in the cache) in the prefix cache.
  void index_computed_blocks(BlockTable& table, std::span<const int32_t> tokens, int64_t num_computed);

  // Releases every block of the table, the last first, so that a sequence's tail is evicted
  // before its head. The table keeps its hashes.
  void release(BlockTable& table);

  const BlockPool& pool() const { return pool_; }
  const PrefixCache& prefix_cache() const { return prefix_; }

 private:
  void extend_hashes(BlockTable& table, std::span<const int32_t> tokens, int64_t num_full_blocks) const;

  KvCacheOptions options_;
  BlockPool pool_;
  PrefixCache prefix_;
};

}  // namespace mlaserve
