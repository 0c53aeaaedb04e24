#include "engine/tokenizer_text_decoder.h"

#include "tokenizer/incremental_detokenizer.h"

namespace mlaserve {
namespace {

class IncrementalTextDecoder final : public TextDecoder {
 public:
  IncrementalTextDecoder(const tokenizer::Tokenizer& tokenizer, bool skip_special_tokens)
      : tokenizer_(tokenizer), detokenizer_(tokenizer, skip_special_tokens) {}
  // The model's vocabulary is padded past the tokenizer's (DeepSeek-V3: 129,280 vs 128,815); a
  // padding id the model happens to sample has no text.
  std::string push(int32_t token) override { return tokenizer_.has_id(token) ? detokenizer_.push(token) : ""; }
  std::string flush() override { return detokenizer_.flush(); }

 private:
  const tokenizer::Tokenizer& tokenizer_;
  tokenizer::IncrementalDetokenizer detokenizer_;
};

}  // namespace

std::unique_ptr<TextDecoder> TokenizerTextDecoderFactory::make(bool skip_special_tokens) const {
  return std::make_unique<IncrementalTextDecoder>(tokenizer_, skip_special_tokens);
}

}  // namespace mlaserve
