// Character properties the tokenizer and the template engine need, each defined the way the
// peer implementation defines it (these differ in small but visible ways):
//   is_white_space     Unicode White_Space: Rust's char::is_whitespace and Oniguruma's \s
//                      (HF added-token lstrip/rstrip, Split regexes).
//   is_python_space    Python's str.isspace (adds U+001C-U+001F): jinja2 whitespace control,
//                      str.strip() and str.split().
//   is_word_char       UTS #18 \w (Alphabetic, M, Nd, Pc, Join_Control), as the Rust regex
//                      crate defines it: HF's single_word added-token boundaries.
//   is_python_printable  Python's str.isprintable for one character: string repr().
// General-category tables come from the linked PCRE2 (Unicode 14.0), corrected to Unicode 16.0
// (Hugging Face's Oniguruma) by the generated unicode_delta.inc where the two differ.
#pragma once

#include <string_view>
#include <vector>

namespace mlaserve::tokenizer::unicode {

bool is_white_space(char32_t c);
bool is_python_space(char32_t c);
bool is_word_char(char32_t c);
bool is_python_printable(char32_t c);

// The White_Space code points as the body of a PCRE2 character class (no brackets).
std::string_view white_space_class_body();

struct CodePointRange {
  char32_t first;
  char32_t last;
};

// How general category `category` ("L", "Lo", "N", ...) changed from PCRE2's Unicode version
// to Hugging Face's: the ranges that joined it and those that left it. Empty for names that
// are not general categories.
struct CategoryDelta {
  std::vector<CodePointRange> added;
  std::vector<CodePointRange> removed;
};
CategoryDelta category_delta(std::string_view category);

// True for the one- and two-letter general category names ("L", "Lu", "Nd", "LC", "L&").
bool is_general_category(std::string_view name);

// The Unicode version of the linked PCRE2, and the one the delta table was generated for.
std::string_view pcre2_unicode_version();
std::string_view delta_base_version();
std::string_view delta_target_version();

}  // namespace mlaserve::tokenizer::unicode
