#include "engine/output_text.h"

#include <algorithm>

namespace mlaserve {

OutputText::OutputText(std::unique_ptr<TextDecoder> decoder, std::vector<std::string> stop)
    : decoder_(std::move(decoder)), stop_(std::move(stop)) {
  for (const std::string& s : stop_) max_stop_len_ = std::max(max_stop_len_, s.size());
}

bool OutputText::append(int32_t token) {
  if (!decoder_ || !matched_.empty()) return false;
  return add_and_search(decoder_->push(token));
}

bool OutputText::finish() {
  if (!decoder_ || !matched_.empty()) return false;
  return add_and_search(decoder_->flush());
}

bool OutputText::add_and_search(const std::string& piece) {
  if (piece.empty()) return false;
  // A match must end inside the new piece, so it starts at most max_stop_len - 1 bytes before it.
  const size_t from = text_.size() - std::min(text_.size(), max_stop_len_ > 0 ? max_stop_len_ - 1 : 0);
  text_ += piece;
  size_t best = std::string::npos;
  for (const std::string& s : stop_) {
    const size_t at = text_.find(s, from);
    if (at < best) {
      best = at;
      matched_ = s;
    }
  }
  if (best == std::string::npos) return false;
  text_.resize(best);  // held_back() kept every possible match start out of taken_
  return true;
}

size_t OutputText::held_back() const {
  size_t hold = 0;
  const std::string_view rest = std::string_view(text_).substr(taken_);
  for (const std::string& s : stop_) {
    for (size_t k = std::min(s.size() - 1, rest.size()); k > hold; --k) {
      if (rest.ends_with(std::string_view(s).substr(0, k))) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

std::string OutputText::take(bool all) {
  const size_t end = all || !matched_.empty() ? text_.size() : text_.size() - held_back();
  std::string out = text_.substr(taken_, end - taken_);
  taken_ = end;
  return out;
}

}  // namespace mlaserve
