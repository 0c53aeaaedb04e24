#include "kv/kv_cache_manager.h"

#include <algorithm>

#include "core/error.h"

namespace mlaserve {
namespace {

std::span<const int32_t> block_tokens(std::span<const int32_t> tokens, int64_t i) {
  return tokens.subspan(static_cast<size_t>(i * kCacheBlockSize), static_cast<size_t>(kCacheBlockSize));
}

}  // namespace

KvCacheManager::KvCacheManager(KvCacheOptions options)
    : options_(options), pool_(options.num_blocks), prefix_(options.num_blocks) {}

void KvCacheManager::extend_hashes(BlockTable& table, std::span<const int32_t> tokens,
                                   int64_t num_full_blocks) const {
  for (auto i = static_cast<int64_t>(table.hashes.size()); i < num_full_blocks; ++i) {
    const uint64_t parent = i == 0 ? 0 : table.hashes[static_cast<size_t>(i - 1)];
    table.hashes.push_back(hash_block_tokens(parent, block_tokens(tokens, i)));
  }
}

int64_t KvCacheManager::acquire_cached_prefix(BlockTable& table, std::span<const int32_t> tokens,
                                              int64_t max_tokens) {
  MLA_CHECK(table.empty(), "acquire_cached_prefix: the table already holds {} blocks", table.blocks.size());
  if (!options_.enable_prefix_caching) return 0;
  const int64_t full = std::min<int64_t>(max_tokens, static_cast<int64_t>(tokens.size())) / kCacheBlockSize;
  extend_hashes(table, tokens, full);
  for (int64_t i = 0; i < full; ++i) {
    auto hit = prefix_.find(table.hashes[static_cast<size_t>(i)], table.last_serial, block_tokens(tokens, i));
    if (!hit) break;
    pool_.retain(hit->block);
    table.blocks.push_back(hit->block);
    table.last_serial = hit->serial;
    table.num_indexed = i + 1;
  }
  return table.num_indexed * kCacheBlockSize;
}

bool KvCacheManager::allocate(BlockTable& table, int64_t num_tokens) {
  const int64_t needed = blocks_for_tokens(num_tokens) - static_cast<int64_t>(table.blocks.size());
  if (needed <= 0) return true;
  if (needed > pool_.num_available()) return false;
  for (int64_t i = 0; i < needed; ++i) {
    BlockPool::Allocation a = pool_.allocate();
    if (a.evicted) prefix_.erase(a.block);
    table.blocks.push_back(a.block);
  }
  return true;
}

void KvCacheManager::index_computed_blocks(BlockTable& table, std::span<const int32_t> tokens,
                                           int64_t num_computed) {
  if (!options_.enable_prefix_caching) return;
  const int64_t full = num_computed / kCacheBlockSize;
  MLA_CHECK(full <= static_cast<int64_t>(table.blocks.size()) && num_computed <= static_cast<int64_t>(tokens.size()),
            "index_computed_blocks: {} computed tokens, {} tokens, {} blocks", num_computed, tokens.size(),
            table.blocks.size());
  extend_hashes(table, tokens, full);
  for (int64_t i = table.num_indexed; i < full; ++i) {
    const BlockId block = table.blocks[static_cast<size_t>(i)];
    PrefixCache::Insert ins =
        prefix_.insert(table.hashes[static_cast<size_t>(i)], table.last_serial, block_tokens(tokens, i), block);
    if (ins.inserted) pool_.mark_cached(block);
    table.last_serial = ins.serial;
    table.num_indexed = i + 1;
  }
}

void KvCacheManager::release(BlockTable& table) {
  for (auto it = table.blocks.rbegin(); it != table.blocks.rend(); ++it) pool_.release(*it);
  table.blocks.clear();
  table.num_indexed = 0;
  table.last_serial = 0;
}

}  // namespace mlaserve
