// Streaming decode: token ids go in one at a time, and only text that no later token can
// change comes out.
//
// With Hugging Face's ByteLevel decoder the text of a sequence is the lossy UTF-8 decoding of
// the concatenated token bytes, so the only text that can still change is a trailing,
// truncated but so far well-formed UTF-8 sequence (e.g. the first 3 bytes of an emoji split
// across tokens). push() appends the token's bytes, holds back that tail (at most 3 bytes)
// and returns the rest decoded; flush() decodes the tail (a U+FFFD if it never completed).
// Hence concat(push(id_1) ... push(id_n), flush()) == tokenizer.decode(ids), byte for byte,
// and what is returned is always valid UTF-8.
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace mlaserve::tokenizer {

class IncrementalDetokenizer {
 public:
  // `tokenizer` must outlive this object.
  IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens);

  // Feeds one id (which must exist in the vocabulary) and returns the newly stable text.
  std::string push(int32_t id);

  // Ends the stream: returns the held-back bytes, decoded. The detokenizer is then empty and
  // may be reused for a new stream.
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;  // undecoded bytes: a truncated UTF-8 sequence, at most 3 bytes
};

}  // namespace mlaserve::tokenizer
