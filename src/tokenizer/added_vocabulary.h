// Added tokens (tokenizer.json "added_tokens"): strings that are cut out of the input before
// pre-tokenisation and map straight to their id, such as <｜User｜> or <｜end▁of▁sentence｜>.
//
// Matching follows Hugging Face's AddedVocabulary::extract_and_normalize:
//   1. tokens with normalized=false are found in the raw text;
//   2. tokens with normalized=true are found in the text between those matches (after the
//      normalizer, which is the identity for every tokenizer this loader accepts).
// Each pass is a leftmost-longest, non-overlapping scan (the aho-corasick LeftmostLongest
// semantics HF uses). Then, per match:
//   single_word  the match is dropped if a word character (unicode::is_word_char) touches
//                either end;
//   lstrip       the span grows left over White_Space, but not past the previous match;
//   rstrip       the span grows right over White_Space (the stripped space belongs to the
//                token and disappears from the text).
// special only matters for decoding (skip_special_tokens).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/function_ref.h"

namespace mlaserve::tokenizer {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

class AddedVocabulary {
 public:
  // A segment of the input: an added token (token_id >= 0) or plain text (token_id == -1).
  struct Segment {
    std::string_view text;
    int32_t token_id;
  };
  using SegmentSink = FunctionRef<void(Segment)>;

  explicit AddedVocabulary(std::vector<AddedToken> tokens);

  const std::vector<AddedToken>& tokens() const { return tokens_; }

  // Cuts `text` (valid UTF-8) into segments and calls sink for each non-empty one, in order.
  void split(std::string_view text, SegmentSink sink) const;

 private:
  // A byte trie over the contents of one pass's tokens.
  class Trie {
   public:
    void insert(std::string_view key, int32_t token_index);
    bool empty() const { return nodes_.size() == 1; }
    // Length and token index of the longest key that starts at text[pos], or {0, -1}.
    std::pair<size_t, int32_t> longest_at(std::string_view text, size_t pos) const;
    bool may_start(unsigned char b) const { return first_byte_[b]; }

   private:
    struct Node {
      std::vector<std::pair<unsigned char, int32_t>> children;  // byte -> node index
      int32_t token_index = -1;
    };
    std::vector<Node> nodes_{1};
    bool first_byte_[256] = {};
  };

  void split_pass(std::string_view text, const Trie& trie, SegmentSink sink) const;

  std::vector<AddedToken> tokens_;
  Trie raw_trie_;         // normalized == false
  Trie normalized_trie_;  // normalized == true
};

}  // namespace mlaserve::tokenizer
