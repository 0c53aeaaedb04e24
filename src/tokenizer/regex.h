// The Split patterns of tokenizer.json, compiled with PCRE2 (JIT) to behave like Oniguruma,
// which is what Hugging Face tokenizers compiles them with.
//
// Translation (translate_onig_pattern), for the constructs whose meaning differs:
//   \s \S     Unicode White_Space as an explicit class (PCRE2's own \s also takes U+180E).
//   \d \D     \p{Nd}.
//   \p{X}     X a general category: PCRE2's class (Unicode 14) plus the code points that
//   \P{X}     Unicode 16 added to X (unicode_delta.inc), so text with new emoji or CJK
//             extension characters splits as Hugging Face splits it. Other property names
//             (scripts) pass through at PCRE2's Unicode version.
//   \uHHHH    \x{HHHH}.
//   ^ $       line anchors, as in Ruby syntax (PCRE2_MULTILINE, newline = LF).
// Rejected with an error naming them, because the two engines define them differently:
// \w \W \b \B \h \H \R \X, POSIX bracket classes, nested classes and class intersection (&&).
//
// Iteration (for_each_match) follows the onig crate's find_iter: search from the end of the
// previous match; an empty match exactly there is skipped by advancing one character.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mlaserve::tokenizer {

// Oniguruma (Ruby syntax) pattern -> PCRE2 pattern. Throws mlaserve::Error for the rejected
// constructs above.
std::string translate_onig_pattern(std::string_view pattern);

// Escapes `literal` so that it matches itself as a pattern (a Split with a "String" pattern).
std::string escape_literal(std::string_view literal);

class Regex {
 public:
  struct Match {
    size_t start;
    size_t end;
  };

  // Compiles an Oniguruma-syntax pattern (translated as above). Throws mlaserve::Error with
  // the pattern and PCRE2's message when it does not compile.
  explicit Regex(std::string_view onig_pattern);
  Regex(Regex&& other) noexcept;
  Regex& operator=(Regex&& other) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  ~Regex();

  // The leftmost match in `subject` that starts at or after byte `from` (a character
  // boundary). `subject` must be valid UTF-8 (it is not checked again). Thread-safe.
  std::optional<Match> find(std::string_view subject, size_t from) const;

  // Calls f(start, end) for every match, in order, with Oniguruma's iteration rule.
  template <class F>
  void for_each_match(std::string_view subject, F&& f) const {
    size_t last_end = 0;
    std::optional<size_t> last_match_end;
    while (last_end <= subject.size()) {
      const std::optional<Match> m = find(subject, last_end);
      if (!m) return;
      if (m->start == m->end && last_match_end == m->end) {
        if (last_end >= subject.size()) return;
        last_end += char_length(subject, last_end);
        continue;
      }
      last_end = m->end;
      last_match_end = m->end;
      f(m->start, m->end);
    }
  }

 private:
  static size_t char_length(std::string_view s, size_t i);

  struct Compiled;
  Compiled* compiled_ = nullptr;
};

}  // namespace mlaserve::tokenizer
