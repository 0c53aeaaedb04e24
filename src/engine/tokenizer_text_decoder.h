// TextDecoderFactory over the project's tokenizer: each decoder is a
// tokenizer::IncrementalDetokenizer (valid UTF-8 out, a split multi-byte character held back
// until complete). Ids the tokenizer does not define (the model's vocabulary padding) decode to
// nothing.
#pragma once

#include "engine/text_decoder.h"
#include "tokenizer/tokenizer.h"

namespace mlaserve {

class TokenizerTextDecoderFactory final : public TextDecoderFactory {
 public:
  // `tokenizer` must outlive this factory and every decoder it makes.
  explicit TokenizerTextDecoderFactory(const tokenizer::Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::unique_ptr<TextDecoder> make(bool skip_special_tokens) const override;

 private:
  const tokenizer::Tokenizer& tokenizer_;
};

}  // namespace mlaserve
