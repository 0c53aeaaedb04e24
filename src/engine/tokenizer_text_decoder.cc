#include "engine/tokenizer_text_decoder.h"

#include "tokenizer/incremental_detokenizer.h"

namespace mlaserve {
namespace {

class IncrementalTextDecoder final : public TextDecoder {
 public:
  IncrementalTextDecoder(const tokenizer::Tokenizer& tokenizer, bool skip_special_tokens)
      : detokenizer_(tokenizer, skip_special_tokens) {}
  std::string push(int32_t token) override { return detokenizer_.push(token); }
  std::string flush() override { return detokenizer_.flush(); }

 private:
  tokenizer::IncrementalDetokenizer detokenizer_;
};

}  // namespace

std::unique_ptr<TextDecoder> TokenizerTextDecoderFactory::make(bool skip_special_tokens) const {
  return std::make_unique<IncrementalTextDecoder>(tokenizer_, skip_special_tokens);
}

}  // namespace mlaserve
