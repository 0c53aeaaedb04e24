// PrefixCache: an index from token prefixes to the cache blocks that hold their latent rows, so
// that a request starting with tokens an earlier request already computed reuses those rows.
//
// Only full blocks (64 tokens) are indexed. A block's rows depend on every token before it (the
// latent of position p is a function of tokens 0..p), so a block is keyed by its whole prefix:
//   hash(block i) = XXH3-64(tokens of block i, seed = hash(block i-1)),  hash(block -1) = 0
// a chain, as in vLLM's prefix caching. The hash is only the index. An entry also keeps the
// block's 64 tokens and the serial number of its parent's entry (serials are never reused), and
// a lookup accepts an entry only when both match: walking a prompt block by block from the
// start, block i is accepted only under the entry accepted for block i-1, so by induction a hit
// holds exactly the same tokens as the prompt, even if two prefixes' hashes collide. Several
// entries may share a hash (a collision, or a child whose parent was evicted and recomputed).
//
// The index does not own blocks: the BlockPool keeps cached blocks alive while unreferenced and
// reports evictions, and KvCacheManager keeps the two in step.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "kv/block_pool.h"

namespace mlaserve {

// The chain hash of one full block of tokens after a prefix whose last block hashes to `parent`.
uint64_t hash_block_tokens(uint64_t parent, std::span<const int32_t> tokens);

class PrefixCache {
 public:
  explicit PrefixCache(int32_t num_blocks);

  struct Hit {
    BlockId block = -1;
    uint64_t serial = 0;  // the entry's serial: the parent of the next block's entry
  };
  // The block holding `tokens` with chain hash `hash` after the entry `parent_serial` (0: the
  // block starts the sequence).
  std::optional<Hit> find(uint64_t hash, uint64_t parent_serial, std::span<const int32_t> tokens) const;

  // Indexes `block` as holding `tokens` (hash `hash`) after `parent_serial`. If an equal entry
  // exists already (another sequence computed the same prefix), nothing is added and that
  // entry is returned with inserted = false; `block` then stays unindexed.
  struct Insert {
    uint64_t serial = 0;
    bool inserted = false;
  };
  Insert insert(uint64_t hash, uint64_t parent_serial, std::span<const int32_t> tokens, BlockId block);

  // Drops the entry of an evicted block (no-op when it has none).
  void erase(BlockId block);

  size_t size() const { return index_.size(); }
  bool contains(BlockId block) const { return entries_.at(static_cast<size_t>(block)).serial != 0; }

 private:
  struct Entry {
    uint64_t hash = 0;
    uint64_t serial = 0;  // 0: no entry
    uint64_t parent_serial = 0;
    std::vector<int32_t> tokens;
  };
  const Entry* match(uint64_t hash, uint64_t parent_serial, std::span<const int32_t> tokens, BlockId* block) const;

  std::vector<Entry> entries_;                       // per block id
  std::unordered_multimap<uint64_t, BlockId> index_;  // chain hash -> blocks
  uint64_t next_serial_ = 1;
};

}  // namespace mlaserve
