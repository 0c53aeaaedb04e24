#include "tokenizer/incremental_detokenizer.h"

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace mlaserve::tokenizer {

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(&tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string IncrementalDetokenizer::push(int32_t id) {
  if (!tokenizer_->has_id(id)) MLA_FAIL("cannot decode: token id {} is not in the vocabulary", id);
  if (skip_special_tokens_ && tokenizer_->is_special(id)) return {};
  pending_ += tokenizer_->token_bytes(id);
  const size_t held = utf8::incomplete_suffix_length(pending_);
  std::string out;
  utf8::append_lossy(out, std::string_view(pending_).substr(0, pending_.size() - held));
  pending_.erase(0, pending_.size() - held);
  return out;
}

std::string IncrementalDetokenizer::flush() {
  std::string out;
  utf8::append_lossy(out, pending_);
  pending_.clear();
  return out;
}

}  // namespace mlaserve::tokenizer
