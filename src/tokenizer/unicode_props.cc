#include "tokenizer/unicode_props.h"

#include <pcre2.h>

#include <memory>
#include <string>

#include "core/error.h"
#include "tokenizer/unicode_delta.inc"
#include "tokenizer/utf8.h"

namespace mlaserve::tokenizer::unicode {
namespace {

struct Change {
  const char* old_category;
  const char* new_category;
  char32_t first;
  char32_t last;
};
constexpr Change kChanges[] = {MLASERVE_UNICODE_DELTA_CHANGES};

// Whether a two-letter category `actual` belongs to the requested class `requested`.
bool in_category(std::string_view actual, std::string_view requested) {
  if (requested == "LC" || requested == "L&") return actual == "Lu" || actual == "Ll" || actual == "Lt";
  if (requested.size() == 1) return actual[0] == requested[0];
  return actual == requested;
}

// One compiled PCRE2 class, matched anchored against a single code point.
class CharClass {
 public:
  explicit CharClass(const std::string& pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF, &error,
                          &offset, nullptr);
    MLA_CHECK(code_ != nullptr, "cannot compile character class {}", pattern);
  }
  CharClass(const CharClass&) = delete;
  CharClass& operator=(const CharClass&) = delete;
  ~CharClass() { pcre2_code_free(code_); }

  bool contains(char32_t c) const {
    thread_local std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
        pcre2_match_data_create(1, nullptr), &pcre2_match_data_free);
    std::string s;
    utf8::append(s, c);
    return pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, PCRE2_ANCHORED, data.get(),
                       nullptr) > 0;
  }

 private:
  pcre2_code* code_ = nullptr;
};

void append_ranges(std::string& out, const std::vector<CodePointRange>& ranges) {
  for (const auto& r : ranges) {
    out += fmt::format("\\x{{{:X}}}", static_cast<uint32_t>(r.first));
    if (r.last != r.first) out += fmt::format("-\\x{{{:X}}}", static_cast<uint32_t>(r.last));
  }
}

}  // namespace

bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_python_space(char32_t c) { return is_white_space(c) || (c >= 0x1C && c <= 0x1F); }

std::string_view white_space_class_body() {
  return "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}"
         "\\x{3000}";
}

bool is_word_char(char32_t c) {
  static const CharClass word([] {
    std::string p = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}";
    for (const char* cat : {"L", "Nl", "M", "Nd", "Pc"}) append_ranges(p, category_delta(cat).added);
    return p + "]";
  }());
  return word.contains(c);
}

bool is_python_printable(char32_t c) {
  // Python 3.11 (the peer's version) uses Unicode 14.0, PCRE2's version: no delta here.
  static const CharClass non_printable("[\\p{C}\\p{Z}]");
  return c == 0x20 || !non_printable.contains(c);
}

bool is_general_category(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "C",  "Cc", "Cf", "Cn", "Co", "Cs", "L",  "L&", "LC", "Ll", "Lm", "Lo", "Lt", "Lu",
      "M",  "Mc", "Me", "Mn", "N",  "Nd", "Nl", "No", "P",  "Pc", "Pd", "Pe", "Pf", "Pi",
      "Po", "Ps", "S",  "Sc", "Sk", "Sm", "So", "Z",  "Zl", "Zp", "Zs"};
  for (const auto n : kNames) {
    if (n == name) return true;
  }
  return false;
}

CategoryDelta category_delta(std::string_view category) {
  CategoryDelta delta;
  if (!is_general_category(category)) return delta;
  for (const Change& c : kChanges) {
    const bool was = in_category(c.old_category, category);
    const bool is = in_category(c.new_category, category);
    if (is && !was) delta.added.push_back({c.first, c.last});
    if (was && !is) delta.removed.push_back({c.first, c.last});
  }
  return delta;
}

std::string_view pcre2_unicode_version() {
  static const std::string version = [] {
    char buf[32] = {};
    pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, buf);
    return std::string(buf);
  }();
  return version;
}

std::string_view delta_base_version() { return MLASERVE_UNICODE_DELTA_BASE; }
std::string_view delta_target_version() { return MLASERVE_UNICODE_DELTA_TARGET; }

}  // namespace mlaserve::tokenizer::unicode
