#include "tokenizer/added_vocabulary.h"

#include <algorithm>

#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace mlaserve::tokenizer {

void AddedVocabulary::Trie::insert(std::string_view key, int32_t token_index) {
  int32_t node = 0;
  for (const char ch : key) {
    const auto b = static_cast<unsigned char>(ch);
    auto& children = nodes_[static_cast<size_t>(node)].children;
    auto it = std::find_if(children.begin(), children.end(), [b](const auto& c) { return c.first == b; });
    if (it != children.end()) {
      node = it->second;
      continue;
    }
    const auto next = static_cast<int32_t>(nodes_.size());
    children.emplace_back(b, next);
    nodes_.emplace_back();
    node = next;
  }
  // A later duplicate of the same content wins, as in Hugging Face's token map.
  nodes_[static_cast<size_t>(node)].token_index = token_index;
  if (!key.empty()) first_byte_[static_cast<unsigned char>(key.front())] = true;
}

std::pair<size_t, int32_t> AddedVocabulary::Trie::longest_at(std::string_view text, size_t pos) const {
  std::pair<size_t, int32_t> best{0, -1};
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    const auto& children = nodes_[static_cast<size_t>(node)].children;
    auto it = std::find_if(children.begin(), children.end(), [b](const auto& c) { return c.first == b; });
    if (it == children.end()) break;
    node = it->second;
    const int32_t token = nodes_[static_cast<size_t>(node)].token_index;
    if (token >= 0) best = {i + 1 - pos, token};
  }
  return best;
}

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& t = tokens_[i];
    if (t.content.empty()) continue;
    (t.normalized ? normalized_trie_ : raw_trie_).insert(t.content, static_cast<int32_t>(i));
  }
}

void AddedVocabulary::split(std::string_view text, SegmentSink sink) const {
  if (text.empty()) return;
  if (raw_trie_.empty() && normalized_trie_.empty()) {
    sink(Segment{text, -1});
    return;
  }
  split_pass(text, raw_trie_, [&](Segment s) {
    if (s.token_id >= 0) {
      sink(s);
    } else {
      split_pass(s.text, normalized_trie_, sink);
    }
  });
}

void AddedVocabulary::split_pass(std::string_view text, const Trie& trie, SegmentSink sink) const {
  if (trie.empty()) {
    sink(Segment{text, -1});
    return;
  }
  size_t emitted = 0;  // end of what has been handed to sink
  size_t pos = 0;      // where the scan for the next match resumes
  while (pos < text.size()) {
    if (!trie.may_start(static_cast<unsigned char>(text[pos]))) {
      ++pos;
      continue;
    }
    const auto [length, index] = trie.longest_at(text, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[static_cast<size_t>(index)];
    size_t start = pos;
    size_t stop = pos + length;
    pos = stop;  // matches never overlap, whatever the stripping below does
    if (token.single_word) {
      const bool word_before = start > 0 && unicode::is_word_char(utf8::decode_before(text, start));
      size_t after = stop;
      const bool word_after = stop < text.size() && unicode::is_word_char(utf8::decode(text, after));
      if (word_before || word_after) continue;
    }
    if (token.lstrip) {
      size_t s = start;
      while (s > 0 && unicode::is_white_space(utf8::decode_before(text, s))) {
        s -= 1;
        while ((static_cast<unsigned char>(text[s]) & 0xC0) == 0x80) --s;
      }
      start = std::max(s, emitted);
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        size_t next = stop;
        if (!unicode::is_white_space(utf8::decode(text, next))) break;
        stop = next;
      }
    }
    if (start > emitted) sink(Segment{text.substr(emitted, start - emitted), -1});
    sink(Segment{text.substr(start, stop - start), token.id});
    emitted = stop;
  }
  if (emitted < text.size()) sink(Segment{text.substr(emitted), -1});
}

}  // namespace mlaserve::tokenizer
