// Tokenizer: text <-> token ids for the byte-level BPE tokenizers DeepSeek ships (V2, V2-Lite,
// V3, R1), equal byte for byte to Hugging Face tokenizers with transformers' BOS/EOS rule.
//
// encode(text, add_special_tokens):
//   1. added tokens (<｜User｜>, <｜end▁of▁sentence｜>, ...) are cut out of the text first
//      (added_vocabulary.h); their ids go straight to the output;
//   2. every other segment is pre-tokenized (pre_tokenizer.h: the Split regexes, ByteLevel);
//   3. every piece is merged by BPE rank (bpe.h; cached per piece);
//   4. with add_special_tokens, BOS before and EOS after as tokenizer_config.json says
//      (DeepSeek: BOS only). tokenizer.json itself adds nothing.
// decode(ids, skip_special_tokens): Hugging Face's ByteLevel decoder. Each token contributes
//   bytes (its byte-level characters mapped back; an added token whose text is not all
//   byte-level characters contributes its UTF-8 text); the concatenation is decoded with
//   U+FFFD for each invalid sequence. skip_special_tokens drops the added tokens flagged
//   "special" (in V3 that is BOS/EOS/pad, not <｜User｜> or the tool tokens).
//
// Special ids are never hard-coded: all come from the two files. Errors (unreadable or
// malformed files, unsupported components, invalid UTF-8 input, unknown ids) are
// mlaserve::Error with a message naming the problem. All const methods are thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer_config.h"

namespace mlaserve::tokenizer {

class Tokenizer {
 public:
  // Loads DIR/tokenizer.json and DIR/tokenizer_config.json (plus DIR/chat_template.jinja when
  // the config carries no chat_template).
  static Tokenizer load(const std::filesystem::path& dir);
  // Builds a tokenizer from the contents of the two files.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Token ids of `text`, which must be valid UTF-8.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;
  // Text of `ids`; every id must exist (see has_id).
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // The raw bytes `id` contributes to decode() (possibly part of a UTF-8 character).
  std::string_view token_bytes(int32_t id) const;
  // Whether `id` is an added token flagged special (dropped by skip_special_tokens).
  bool is_special(int32_t id) const;
  bool has_id(int32_t id) const;

  // The token text as stored in tokenizer.json (byte-level form for BPE tokens), if any.
  std::optional<std::string> id_to_token(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;

  // One past the largest id, added tokens included (128815 for DeepSeek-V3). Ids below it
  // that neither the vocabulary nor the added tokens define fail has_id().
  int32_t vocab_size() const;

  // From tokenizer_config.json, resolved to ids (nullopt where the config names none).
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;

  const TokenizerConfig& config() const;

  // The variables transformers passes to a chat template besides messages and
  // add_generation_prompt: bos_token, eos_token, pad_token and unk_token, those that are set.
  nlohmann::ordered_json template_context() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<const Impl> impl);
  std::unique_ptr<const Impl> impl_;
};

}  // namespace mlaserve::tokenizer
