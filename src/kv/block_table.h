// BlockTable: one sequence's cache blocks, in order (block i holds positions 64i .. 64i+63 in
// every layer), plus what the prefix cache needs to know about them. KvCacheManager fills and
// empties it; the model reads `blocks` (ForwardBatch's SequenceSlice::block_table).
#pragma once

#include <cstdint>
#include <vector>

#include "kv/block_pool.h"
#include "kv/latent_cache.h"

namespace mlaserve {

struct BlockTable {
  std::vector<BlockId> blocks;
  // Chain hashes of the sequence's full blocks computed so far (prefix_cache.h). They depend
  // only on the tokens, so they outlive the blocks (a preempted sequence keeps them).
  std::vector<uint64_t> hashes;
  // Leading blocks already indexed by the prefix cache (or found equal to an indexed block),
  // and the serial of the last one's entry (0: none).
  int64_t num_indexed = 0;
  uint64_t last_serial = 0;

  bool empty() const { return blocks.empty(); }
  // The cache slot (block_id * 64 + row) of a position the table covers.
  int64_t slot(int64_t position) const {
    return int64_t{blocks[static_cast<size_t>(position / kCacheBlockSize)]} * kCacheBlockSize +
           position % kCacheBlockSize;
  }
};

inline int64_t blocks_for_tokens(int64_t num_tokens) { return (num_tokens + kCacheBlockSize - 1) / kCacheBlockSize; }

}  // namespace mlaserve
