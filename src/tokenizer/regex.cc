#include "tokenizer/regex.h"

#include <pcre2.h>

#include <memory>

#include "core/error.h"
#include "tokenizer/unicode_props.h"

namespace mlaserve::tokenizer {
namespace {

std::string ranges_body(const std::vector<unicode::CodePointRange>& ranges) {
  std::string out;
  for (const auto& r : ranges) {
    out += fmt::format("\\x{{{:X}}}", static_cast<uint32_t>(r.first));
    if (r.last != r.first) out += fmt::format("-\\x{{{:X}}}", static_cast<uint32_t>(r.last));
  }
  return out;
}

// \p{name} or \P{name} (negated), inside or outside a character class.
std::string translate_property(std::string_view name, bool negated, bool in_class, std::string_view pattern) {
  std::string pcre_name(name == "LC" ? "L&" : name);
  const std::string plain = fmt::format("\\{}{{{}}}", negated ? 'P' : 'p', pcre_name);
  const unicode::CategoryDelta delta = unicode::category_delta(name);
  if (delta.added.empty() && delta.removed.empty()) return plain;
  const std::string member = fmt::format("\\p{{{}}}{}", pcre_name, ranges_body(delta.added));
  if (in_class) {
    MLA_CHECK(!negated && delta.removed.empty(),
              "regex {:?}: \\{}{{{}}} inside a character class cannot be corrected to Unicode {} (not supported)",
              pattern, negated ? 'P' : 'p', name, unicode::delta_target_version());
    return member;
  }
  const std::string removed = ranges_body(delta.removed);
  if (!negated) return delta.removed.empty() ? "[" + member + "]" : "(?:(?![" + removed + "])[" + member + "])";
  return delta.removed.empty() ? "[^" + member + "]" : "(?:[" + removed + "]|[^" + member + "])";
}

}  // namespace

std::string translate_onig_pattern(std::string_view p) {
  const std::string space(unicode::white_space_class_body());
  std::string out;
  out.reserve(p.size() + 16);
  bool in_class = false;
  size_t i = 0;
  while (i < p.size()) {
    const char c = p[i];
    if (c == '\\') {
      MLA_CHECK(i + 1 < p.size(), "regex {:?} ends with a lone backslash", p);
      const char e = p[i + 1];
      i += 2;
      switch (e) {
        case 's':
          out += in_class ? space : "[" + space + "]";
          break;
        case 'S':
          MLA_CHECK(!in_class, "regex {:?}: \\S inside a character class is not supported", p);
          out += "[^" + space + "]";
          break;
        case 'd':
        case 'D':
          out += translate_property("Nd", e == 'D', in_class, p);
          break;
        case 'p':
        case 'P': {
          std::string_view name;
          if (i < p.size() && p[i] == '{') {
            const size_t close = p.find('}', i);
            MLA_CHECK(close != std::string_view::npos, "regex {:?}: unterminated \\{}{{", p, e);
            name = p.substr(i + 1, close - i - 1);
            i = close + 1;
          } else {
            MLA_CHECK(i < p.size(), "regex {:?}: \\{} without a property name", p, e);
            name = p.substr(i++, 1);
          }
          bool negated = e == 'P';
          if (name.starts_with('^')) {
            negated = !negated;
            name.remove_prefix(1);
          }
          out += translate_property(name, negated, in_class, p);
          break;
        }
        case 'u': {
          MLA_CHECK(i + 4 <= p.size(), "regex {:?}: \\u needs four hex digits", p);
          out += "\\x{" + std::string(p.substr(i, 4)) + "}";
          i += 4;
          break;
        }
        case 'w':
        case 'W':
        case 'b':
        case 'B':
        case 'h':
        case 'H':
        case 'R':
        case 'X':
          MLA_FAIL("regex {:?}: \\{} is not supported (Oniguruma and PCRE2 define it differently)", p, e);
        default:
          out += '\\';
          out += e;
          break;
      }
      continue;
    }
    if (c == '[') {
      MLA_CHECK(!in_class, "regex {:?}: {} inside a character class is not supported", p,
                p.substr(i).starts_with("[:") ? "a POSIX bracket class" : "a nested class");
      in_class = true;
      out += c;
      ++i;
      if (i < p.size() && p[i] == '^') out += p[i++];
      continue;
    }
    if (in_class && c == '&' && i + 1 < p.size() && p[i + 1] == '&') {
      MLA_FAIL("regex {:?}: class intersection (&&) is not supported", p);
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
    ++i;
  }
  return out;
}

std::string escape_literal(std::string_view literal) {
  std::string out;
  for (const char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u) && c != '_' && u >= 0x20) out += '\\';
    if (u < 0x20) {
      out += fmt::format("\\x{{{:X}}}", u);
      continue;
    }
    out += c;
  }
  return out;
}

// Per-thread match state: PCRE2 match data is not shareable between threads.
struct MatchState {
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data{pcre2_match_data_create(1, nullptr),
                                                                             &pcre2_match_data_free};
  std::unique_ptr<pcre2_match_context, decltype(&pcre2_match_context_free)> context{
      pcre2_match_context_create(nullptr), &pcre2_match_context_free};
  // The JIT stack grows from 32 KiB up to 8 MiB for long backtracking runs.
  std::unique_ptr<pcre2_jit_stack, decltype(&pcre2_jit_stack_free)> jit_stack{
      pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr), &pcre2_jit_stack_free};

  MatchState() {
    MLA_CHECK(data && context && jit_stack, "out of memory creating PCRE2 match state");
    pcre2_jit_stack_assign(context.get(), nullptr, jit_stack.get());
  }
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

struct Regex::Compiled {
  std::string source;
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Compiled() { pcre2_code_free(code); }
};

Regex::Regex(std::string_view onig_pattern) : compiled_(new Compiled) {
  std::unique_ptr<Compiled> guard(compiled_);
  compiled_->source = onig_pattern;
  const std::string translated = translate_onig_pattern(onig_pattern);
  std::unique_ptr<pcre2_compile_context, decltype(&pcre2_compile_context_free)> ctx(
      pcre2_compile_context_create(nullptr), &pcre2_compile_context_free);
  pcre2_set_newline(ctx.get(), PCRE2_NEWLINE_LF);
  int error = 0;
  PCRE2_SIZE offset = 0;
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                  PCRE2_UTF | PCRE2_MULTILINE, &error, &offset, ctx.get());
  if (compiled_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    MLA_FAIL("cannot compile regex {:?} (as PCRE2 {:?}): {} at offset {}", onig_pattern, translated,
             reinterpret_cast<const char*>(message), offset);
  }
  compiled_->jit = pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE) == 0;
  guard.release();
}

Regex::Regex(Regex&& other) noexcept : compiled_(other.compiled_) { other.compiled_ = nullptr; }

Regex& Regex::operator=(Regex&& other) noexcept {
  std::swap(compiled_, other.compiled_);
  return *this;
}

Regex::~Regex() { delete compiled_; }

std::optional<Regex::Match> Regex::find(std::string_view subject, size_t from) const {
  MatchState& st = match_state();
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  const int rc = compiled_->jit
                     ? pcre2_jit_match(compiled_->code, s, subject.size(), from, 0, st.data.get(), st.context.get())
                     : pcre2_match(compiled_->code, s, subject.size(), from, PCRE2_NO_UTF_CHECK, st.data.get(),
                                   st.context.get());
  if (rc == PCRE2_ERROR_NOMATCH) return std::nullopt;
  if (rc < 0) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(rc, message, sizeof(message));
    MLA_FAIL("regex {:?} failed on a {}-byte piece: {}", compiled_->source, subject.size(),
             reinterpret_cast<const char*>(message));
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data.get());
  return Match{ov[0], ov[1]};
}

size_t Regex::char_length(std::string_view s, size_t i) {
  size_t n = 1;
  while (i + n < s.size() && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80) ++n;
  return n;
}

}  // namespace mlaserve::tokenizer
