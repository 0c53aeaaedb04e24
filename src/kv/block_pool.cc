#include "kv/block_pool.h"

#include "core/error.h"

namespace mlaserve {

BlockPool::BlockPool(int32_t num_blocks)
    : ref_(static_cast<size_t>(num_blocks), 0),
      cached_(static_cast<size_t>(num_blocks), 0),
      prev_(static_cast<size_t>(num_blocks), -1),
      next_(static_cast<size_t>(num_blocks), -1),
      in_lru_(static_cast<size_t>(num_blocks), 0) {
  MLA_CHECK(num_blocks > 0, "a block pool needs at least one block, got {}", num_blocks);
  free_.reserve(static_cast<size_t>(num_blocks));
  // Stack order: block 0 is handed out first.
  for (BlockId b = num_blocks - 1; b >= 0; --b) free_.push_back(b);
}

void BlockPool::check_id(BlockId block) const {
  MLA_CHECK(block >= 0 && block < num_blocks(), "block id {} outside the pool of {}", block, num_blocks());
}

BlockPool::Allocation BlockPool::allocate() {
  Allocation a;
  if (!free_.empty()) {
    a.block = free_.back();
    free_.pop_back();
  } else {
    MLA_CHECK(lru_head_ >= 0, "block pool exhausted: all {} blocks are in use", num_blocks());
    a.block = lru_head_;
    lru_remove(a.block);
    cached_[a.block] = 0;
    a.evicted = true;
  }
  ref_[a.block] = 1;
  return a;
}

void BlockPool::retain(BlockId block) {
  check_id(block);
  if (ref_[block] == 0) {
    MLA_CHECK(in_lru_[block], "retain of free block {} (only in-use or cached blocks can be shared)", block);
    lru_remove(block);
  }
  ++ref_[block];
}

void BlockPool::release(BlockId block) {
  check_id(block);
  MLA_CHECK(ref_[block] > 0, "release of block {}, which has no reference (double free)", block);
  if (--ref_[block] > 0) return;
  if (cached_[block]) {
    lru_push_back(block);
  } else {
    free_.push_back(block);
  }
}

void BlockPool::mark_cached(BlockId block) {
  check_id(block);
  MLA_CHECK(ref_[block] > 0, "mark_cached of unreferenced block {}", block);
  cached_[block] = 1;
}

int32_t BlockPool::ref_count(BlockId block) const {
  check_id(block);
  return ref_[block];
}

bool BlockPool::is_cached(BlockId block) const {
  check_id(block);
  return cached_[block] != 0;
}

void BlockPool::lru_push_back(BlockId block) {
  prev_[block] = lru_tail_;
  next_[block] = -1;
  if (lru_tail_ >= 0) {
    next_[lru_tail_] = block;
  } else {
    lru_head_ = block;
  }
  lru_tail_ = block;
  in_lru_[block] = 1;
  ++num_lru_;
}

void BlockPool::lru_remove(BlockId block) {
  const BlockId p = prev_[block], n = next_[block];
  (p >= 0 ? next_[p] : lru_head_) = n;
  (n >= 0 ? prev_[n] : lru_tail_) = p;
  prev_[block] = next_[block] = -1;
  in_lru_[block] = 0;
  --num_lru_;
}

}  // namespace mlaserve
