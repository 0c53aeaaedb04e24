// BlockPool: who holds which 64-token cache block (latent_cache.h is the storage itself).
//
// Every block is in exactly one of three states:
//   in use     ref_count >= 1: held by one sequence, or shared by several through the prefix
//              cache (only full, never-again-written blocks are shared)
//   cached     ref_count == 0, its rows are registered in the prefix cache: kept for reuse, in a
//              least-recently-released list, and evicted only when no free block is left
//   free       ref_count == 0, nothing worth keeping: on the free list
// allocate() takes a free block first, else evicts the least recently released cached block
// (and says so, so that the prefix cache forgets it). release() of the last reference sends a
// block to the cached list or the free list according to its mark. Releasing a block with no
// reference, or retaining a free one, is a bug and fails a check.
#pragma once

#include <cstdint>
#include <vector>

namespace mlaserve {

using BlockId = int32_t;

class BlockPool {
 public:
  explicit BlockPool(int32_t num_blocks);

  int32_t num_blocks() const { return static_cast<int32_t>(ref_.size()); }
  // Blocks allocate() can hand out: free plus cached-and-unreferenced.
  int32_t num_available() const { return static_cast<int32_t>(free_.size()) + num_lru_; }
  int32_t num_free() const { return static_cast<int32_t>(free_.size()); }
  int32_t num_evictable() const { return num_lru_; }

  struct Allocation {
    BlockId block = -1;
    bool evicted = false;  // the block was cached: its prefix-cache entry must be dropped
  };
  // A block with one reference. Requires num_available() > 0.
  Allocation allocate();

  // One more reference to an in-use or cached block (a prefix-cache hit).
  void retain(BlockId block);
  // One reference fewer; at zero the block becomes cached (if marked) or free.
  void release(BlockId block);
  // Marks an in-use block as holding prefix-cache content (kept when unreferenced).
  void mark_cached(BlockId block);

  int32_t ref_count(BlockId block) const;
  bool is_cached(BlockId block) const;

 private:
  void check_id(BlockId block) const;
  void lru_push_back(BlockId block);
  void lru_remove(BlockId block);

  std::vector<int32_t> ref_;      // per block
  std::vector<uint8_t> cached_;   // per block: holds prefix-cache content
  std::vector<BlockId> free_;     // stack of free blocks
  // The cached, unreferenced blocks as an intrusive doubly linked list, least recently
  // released first. -1 ends the list; in_lru_ tells membership.
  std::vector<BlockId> prev_, next_;
  std::vector<uint8_t> in_lru_;
  BlockId lru_head_ = -1, lru_tail_ = -1;
  int32_t num_lru_ = 0;
};

}  // namespace mlaserve
