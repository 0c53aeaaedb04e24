#include "server/reasoning_splitter.h"

#include <algorithm>

namespace mlaserve::server {
namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// The length of the longest suffix of `s` that is a proper prefix of `tag`.
size_t partial_tag_suffix(std::string_view s, std::string_view tag) {
  for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n) {
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}

}  // namespace

ReasoningSplitter::ReasoningSplitter(bool prompt_opened_think)
    : state_(prompt_opened_think ? State::kReasoning : State::kStart) {}

SplitText ReasoningSplitter::push(std::string_view text) {
  pending_ += text;
  return drain(false);
}

SplitText ReasoningSplitter::finish() { return drain(true); }

SplitText ReasoningSplitter::drain(bool final) {
  SplitText out;
  while (true) {
    if (state_ == State::kStart) {
      const size_t first = std::find_if_not(pending_.begin(), pending_.end(), is_space) - pending_.begin();
      const std::string_view rest = std::string_view(pending_).substr(first);
      if (rest.substr(0, kOpen.size()) == kOpen) {
        pending_.erase(0, first + kOpen.size());
        state_ = State::kReasoning;
        continue;
      }
      if (!final && kOpen.substr(0, rest.size()) == rest) return out;  // "", " <th": undecided
      state_ = State::kContent;
      continue;
    }
    if (state_ == State::kContent) {
      out.content += pending_;
      pending_.clear();
      return out;
    }
    // kReasoning
    const size_t close = pending_.find(kClose);
    if (close != std::string::npos) {
      out.reasoning += pending_.substr(0, close);
      pending_.erase(0, close + kClose.size());
      state_ = State::kContent;
      continue;
    }
    const size_t keep = final ? 0 : partial_tag_suffix(pending_, kClose);
    out.reasoning += pending_.substr(0, pending_.size() - keep);
    pending_.erase(0, pending_.size() - keep);
    return out;
  }
}

bool prompt_opens_think(std::string_view prompt) {
  while (!prompt.empty() && is_space(prompt.back())) prompt.remove_suffix(1);
  return prompt.size() >= kOpen.size() && prompt.substr(prompt.size() - kOpen.size()) == kOpen;
}

}  // namespace mlaserve::server
