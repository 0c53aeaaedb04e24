// Reads a Hugging Face tokenizer.json into typed specs, and rejects, naming the field, every
// component this loader does not implement (so an unsupported file fails at load time
// instead of tokenising differently from Hugging Face).
//
// Accepted (what DeepSeek V2, V3 and R1 ship, plus the options of those components):
//   normalizer      null, or a Sequence with no normalizers in it
//   pre_tokenizer   ByteLevel, or a Sequence of Split steps then one ByteLevel
//   model           BPE: vocab, merges ("A B" strings or [A, B] pairs), unk_token,
//                   fuse_unk, ignore_merges; dropout null or 0; no byte_fallback, no
//                   subword prefix or suffix
//   post_processor  null or ByteLevel (offsets only: no ids added)
//   decoder         ByteLevel, or a Sequence of ByteLevel
//   added_tokens    with all five flags
//   truncation, padding  null
#pragma once

#include <string_view>
#include <vector>

#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pre_tokenizer.h"

namespace mlaserve::tokenizer {

struct TokenizerSpec {
  std::vector<AddedToken> added_tokens;
  PreTokenizerSpec pre_tokenizer;
  BpeSpec model;
};

// Parses the text of a tokenizer.json. Throws mlaserve::Error ("tokenizer.json: <field>:
// <problem>") for malformed JSON, missing or mistyped fields and unsupported components.
TokenizerSpec parse_tokenizer_json(std::string_view text);

}  // namespace mlaserve::tokenizer
