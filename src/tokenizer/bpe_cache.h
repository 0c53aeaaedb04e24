// A bounded, thread-safe cache from a pre-token's bytes to its BPE ids, so that frequent words
// are merged once. 16 shards picked by hash, each a mutex-guarded open-addressing table whose
// keys and ids live in two arenas (no allocation per entry). A full shard is cleared whole:
// memory stays bounded and the frequent words return after a few hundred pieces.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace mlaserve::tokenizer {

class BpeCache {
 public:
  static constexpr size_t kMaxKeyBytes = 96;        // longer pieces are not cached
  static constexpr size_t kEntriesPerShard = 4096;  // 64 Ki entries in all

  BpeCache();

  static uint64_t hash(std::string_view key);

  // Appends the cached ids of `key` to `out` and returns true, or returns false.
  bool lookup(std::string_view key, uint64_t hash, std::vector<int32_t>& out) const;
  void insert(std::string_view key, uint64_t hash, const int32_t* ids, size_t count);

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_offset = 0;
    uint32_t key_length = 0;  // 0: empty slot (keys are never empty)
    uint32_t ids_offset = 0;
    uint32_t ids_count = 0;
  };
  struct Shard {
    mutable std::mutex mutex;
    std::vector<Slot> slots;  // 2x kEntriesPerShard: load factor <= 0.5
    std::string keys;
    std::vector<int32_t> ids;
    size_t entries = 0;
    void clear();
  };
  static constexpr size_t kShards = 16;

  Shard& shard_of(uint64_t hash) const { return shards_[hash >> 60]; }

  mutable std::array<Shard, kShards> shards_;
};

}  // namespace mlaserve::tokenizer
