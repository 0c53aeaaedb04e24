#include "tokenizer/bpe_cache.h"

#include <functional>

namespace mlaserve::tokenizer {
namespace {
constexpr size_t kSlotsPerShard = 2 * BpeCache::kEntriesPerShard;
constexpr size_t kSlotMask = kSlotsPerShard - 1;
static_assert((kSlotsPerShard & kSlotMask) == 0, "slot count must be a power of two");
}  // namespace

void BpeCache::Shard::clear() {
  slots.assign(kSlotsPerShard, Slot{});
  keys.clear();
  ids.clear();
  entries = 0;
}

BpeCache::BpeCache() {
  for (Shard& s : shards_) s.clear();
}

uint64_t BpeCache::hash(std::string_view key) { return std::hash<std::string_view>{}(key) * 0x9E3779B97F4A7C15ull; }

bool BpeCache::lookup(std::string_view key, uint64_t hash, std::vector<int32_t>& out) const {
  Shard& shard = shard_of(hash);
  std::lock_guard lock(shard.mutex);
  for (size_t i = hash & kSlotMask;; i = (i + 1) & kSlotMask) {
    const Slot& s = shard.slots[i];
    if (s.key_length == 0) return false;
    if (s.hash == hash && std::string_view(shard.keys).substr(s.key_offset, s.key_length) == key) {
      out.insert(out.end(), shard.ids.begin() + s.ids_offset, shard.ids.begin() + s.ids_offset + s.ids_count);
      return true;
    }
  }
}

void BpeCache::insert(std::string_view key, uint64_t hash, const int32_t* ids, size_t count) {
  if (key.empty() || key.size() > kMaxKeyBytes) return;
  Shard& shard = shard_of(hash);
  std::lock_guard lock(shard.mutex);
  if (shard.entries + 1 > kEntriesPerShard) shard.clear();
  size_t i = hash & kSlotMask;
  for (;; i = (i + 1) & kSlotMask) {
    const Slot& s = shard.slots[i];
    if (s.key_length == 0) break;
    // Another thread may have inserted the same key since our lookup.
    if (s.hash == hash && std::string_view(shard.keys).substr(s.key_offset, s.key_length) == key) return;
  }
  shard.slots[i] = Slot{hash, static_cast<uint32_t>(shard.keys.size()), static_cast<uint32_t>(key.size()),
                        static_cast<uint32_t>(shard.ids.size()), static_cast<uint32_t>(count)};
  shard.keys.append(key);
  shard.ids.insert(shard.ids.end(), ids, ids + count);
  ++shard.entries;
}

}  // namespace mlaserve::tokenizer
