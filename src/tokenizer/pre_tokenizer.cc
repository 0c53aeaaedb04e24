#include "tokenizer/pre_tokenizer.h"


namespace mlaserve::tokenizer {
namespace {

// The GPT-2 pattern ByteLevel splits with when use_regex is set.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Span {
  size_t start;
  size_t end;
};

// Folds the (span, is_match) stream of one pattern into output spans by a SplitBehavior,
// streaming with at most one pending span (the result equals Hugging Face's folds over the
// whole list).
template <class Emit>
class BehaviorFolder {
 public:
  BehaviorFolder(SplitBehavior behavior, Emit emit) : behavior_(behavior), emit_(emit) {}

  void add(Span s, bool is_match) {
    switch (behavior_) {
      case SplitBehavior::kRemoved:
        if (!is_match) emit_(s);
        break;
      case SplitBehavior::kIsolated:
        emit_(s);
        break;
      case SplitBehavior::kMergedWithPrevious:
        if (is_match && !previous_match_ && has_pending_) {
          pending_.end = s.end;
        } else {
          flush();
          hold(s);
        }
        break;
      case SplitBehavior::kMergedWithNext:
        if (has_pending_ && !is_match) {
          emit_(Span{pending_.start, s.end});
          has_pending_ = false;
        } else {
          flush();
          if (is_match) {
            hold(s);
          } else {
            emit_(s);
          }
        }
        break;
      case SplitBehavior::kContiguous:
        if (has_pending_ && is_match == previous_match_) {
          pending_.end = s.end;
        } else {
          flush();
          hold(s);
        }
        break;
    }
    previous_match_ = is_match;
  }

  void finish() { flush(); }

 private:
  void flush() {
    if (has_pending_) emit_(pending_);
    has_pending_ = false;
  }
  void hold(Span s) {
    pending_ = s;
    has_pending_ = true;
  }

  SplitBehavior behavior_;
  Emit emit_;
  // The pending span (a Span and a flag, not std::optional<Span>: gcc 12 at -O2 reported the
  // optional's payload as maybe-uninitialized where it cannot be).
  Span pending_{0, 0};
  bool has_pending_ = false;
  bool previous_match_ = false;
};

}  // namespace

PreTokenizer::PreTokenizer(const PreTokenizerSpec& spec) {
  for (const SplitSpec& s : spec.splits) {
    const std::string pattern = s.is_regex ? s.pattern : escape_literal(s.pattern);
    steps_.push_back(Step{Regex(pattern), s.behavior, s.invert});
  }
  byte_level_step_ = steps_.size();
  add_prefix_space_ = spec.byte_level.add_prefix_space;
  if (spec.byte_level.use_regex) steps_.push_back(Step{Regex(kGpt2Pattern), SplitBehavior::kIsolated, false});
}

void PreTokenizer::split(std::string_view text, PieceSink sink) const {
  if (!text.empty()) enter(0, text, sink);
}

void PreTokenizer::enter(size_t step, std::string_view piece, PieceSink sink) const {
  if (step == byte_level_step_ && add_prefix_space_ && piece.front() != ' ') {
    std::string prefixed;
    prefixed.reserve(piece.size() + 1);
    prefixed += ' ';
    prefixed += piece;
    apply(step, prefixed, sink);
    return;
  }
  apply(step, piece, sink);
}

void PreTokenizer::apply(size_t step, std::string_view piece, PieceSink sink) const {
  if (step == steps_.size()) {
    sink(piece);
    return;
  }
  const Step& st = steps_[step];
  auto emit = [&](Span s) {
    if (s.end > s.start) enter(step + 1, piece.substr(s.start, s.end - s.start), sink);
  };
  BehaviorFolder<decltype(emit)> folder(st.behavior, emit);
  size_t previous = 0;
  st.regex.for_each_match(piece, [&](size_t start, size_t end) {
    if (start != previous) folder.add(Span{previous, start}, st.invert);
    folder.add(Span{start, end}, !st.invert);
    previous = end;
  });
  if (previous != piece.size()) folder.add(Span{previous, piece.size()}, st.invert);
  folder.finish();
}

}  // namespace mlaserve::tokenizer
