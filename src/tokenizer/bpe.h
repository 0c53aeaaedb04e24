// The byte-level BPE model (tokenizer.json "model" of type BPE).
//
// A pre-token arrives as raw bytes. Its initial symbols are the vocabulary ids of the bytes'
// byte-level characters (byte_level.h), looked up in a 256-entry table, so no byte-level text
// is ever built. Then, as in Hugging Face's Word::merge_all, the adjacent pair with the lowest
// merge rank is merged, leftmost first on ties, until no pair has a rule; a min-heap of
// candidate pairs with lazy invalidation keeps this O(n log n) for long pieces.
// A byte whose character is missing from the vocabulary becomes unk_token if there is one
// (consecutive ones fused with fuse_unk) and is dropped otherwise, as in Hugging Face.
// Results are cached per piece (bpe_cache.h).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/bpe_cache.h"
#include "tokenizer/merge_table.h"

namespace mlaserve::tokenizer {

struct BpeSpec {
  std::vector<std::pair<std::string, int32_t>> vocab;       // byte-level token text -> id
  std::vector<std::pair<std::string, std::string>> merges;  // rank = position
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  bool ignore_merges = false;  // a piece that is a whole vocabulary entry skips merging
};

// Transparent hashing so maps keyed by std::string accept std::string_view look-ups.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // Throws mlaserve::Error for duplicate ids, merges whose parts or result are not in the
  // vocabulary, or an unk_token that is not in it.
  explicit BpeModel(const BpeSpec& spec);

  // Appends the ids of one pre-token (raw bytes) to `out`. Thread-safe.
  void encode(std::string_view piece, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The byte-level text of `id`, or nullptr if the model has no such id.
  const std::string* id_to_token(int32_t id) const;
  // One past the largest id of the model's vocabulary.
  int32_t id_end() const { return static_cast<int32_t>(tokens_.size()); }

 private:
  void merge(std::string_view piece, std::vector<int32_t>& out) const;

  TokenIdMap vocab_;
  std::vector<std::optional<std::string>> tokens_;  // by id
  std::array<int32_t, 256> byte_ids_{};             // id of each byte's character, -1 if none
  MergeTable merges_;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  TokenIdMap whole_pieces_;  // raw bytes -> id, only with ignore_merges
  mutable BpeCache cache_;
};

}  // namespace mlaserve::tokenizer
