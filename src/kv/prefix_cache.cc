#include "kv/prefix_cache.h"

#include <algorithm>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/error.h"

namespace mlaserve {

uint64_t hash_block_tokens(uint64_t parent, std::span<const int32_t> tokens) {
  return XXH3_64bits_withSeed(tokens.data(), tokens.size_bytes(), parent);
}

PrefixCache::PrefixCache(int32_t num_blocks) : entries_(static_cast<size_t>(num_blocks)) {}

const PrefixCache::Entry* PrefixCache::match(uint64_t hash, uint64_t parent_serial, std::span<const int32_t> tokens,
                                             BlockId* block) const {
  auto [first, last] = index_.equal_range(hash);
  for (auto it = first; it != last; ++it) {
    const Entry& e = entries_[static_cast<size_t>(it->second)];
    if (e.parent_serial == parent_serial && std::ranges::equal(e.tokens, tokens)) {
      *block = it->second;
      return &e;
    }
  }
  return nullptr;
}

std::optional<PrefixCache::Hit> PrefixCache::find(uint64_t hash, uint64_t parent_serial,
                                                  std::span<const int32_t> tokens) const {
  BlockId block = -1;
  const Entry* e = match(hash, parent_serial, tokens, &block);
  if (e == nullptr) return std::nullopt;
  return Hit{block, e->serial};
}

PrefixCache::Insert PrefixCache::insert(uint64_t hash, uint64_t parent_serial, std::span<const int32_t> tokens,
                                        BlockId block) {
  MLA_CHECK(block >= 0 && static_cast<size_t>(block) < entries_.size(), "prefix cache: block id {} out of range",
            block);
  BlockId existing = -1;
  if (const Entry* e = match(hash, parent_serial, tokens, &existing)) return Insert{e->serial, false};
  Entry& e = entries_[static_cast<size_t>(block)];
  MLA_CHECK(e.serial == 0, "prefix cache: block {} is already indexed", block);
  e = Entry{hash, next_serial_++, parent_serial, std::vector<int32_t>(tokens.begin(), tokens.end())};
  index_.emplace(hash, block);
  return Insert{e.serial, true};
}

void PrefixCache::erase(BlockId block) {
  Entry& e = entries_.at(static_cast<size_t>(block));
  if (e.serial == 0) return;
  auto [first, last] = index_.equal_range(e.hash);
  for (auto it = first; it != last; ++it) {
    if (it->second == block) {
      index_.erase(it);
      break;
    }
  }
  e = Entry{};
}

}  // namespace mlaserve
