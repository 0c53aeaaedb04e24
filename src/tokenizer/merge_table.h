// BPE merge rules as a flat open-addressing hash table: (left id, right id) -> (rank, merged
// id). One probe sequence over 16-byte slots; built once at load time, read-only after.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mlaserve::tokenizer {

class MergeTable {
 public:
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };

  explicit MergeTable(size_t expected_size = 0);

  // Inserts or overwrites the rule for (left, right).
  void insert(int32_t left, int32_t right, Merge merge);

  // The rule for (left, right), or nullptr.
  const Merge* find(int32_t left, int32_t right) const {
    const uint64_t key = pack(left, right);
    for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.merge;
      if (s.key == kEmpty) return nullptr;
    }
  }

  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t key;
    Merge merge;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  static uint64_t pack(int32_t left, int32_t right) {
    return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
  }
  size_t slot_of(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }
  void rehash(size_t capacity);

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 64;
  size_t size_ = 0;
};

}  // namespace mlaserve::tokenizer
