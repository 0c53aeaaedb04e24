#include "tokenizer/regex.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "tokenizer/unicode_props.h"

namespace mlaserve::tokenizer {
namespace {

using Spans = std::vector<std::pair<size_t, size_t>>;

Spans matches(std::string_view pattern, std::string_view subject) {
  Spans out;
  Regex(pattern).for_each_match(subject, [&](size_t s, size_t e) { out.emplace_back(s, e); });
  return out;
}

void expect_rejected(std::string_view pattern, std::string_view mention) {
  try {
    translate_onig_pattern(pattern);
    ADD_FAILURE() << pattern << " was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(mention), std::string::npos) << e.what();
  }
}

TEST(Regex, PcreUnicodeVersionIsTheDeltaBase) {
  // unicode_delta.inc corrects PCRE2's tables from this version to Hugging Face's.
  EXPECT_EQ(unicode::pcre2_unicode_version(), unicode::delta_base_version());
}

TEST(Regex, WhiteSpaceIsOniguruma) {
  EXPECT_EQ(matches("\\s", "\xC2\x85"), (Spans{{0, 2}}));  // U+0085 is White_Space
  EXPECT_TRUE(matches("\\s", "\xE1\xA0\x8E").empty());     // U+180E is not (PCRE2's \s says it is)
  EXPECT_EQ(matches("\\S+", "a\xE1\xA0\x8E" "b c"), (Spans{{0, 5}, {6, 7}}));
  EXPECT_EQ(matches("[^\\s]+", "ab cd"), (Spans{{0, 2}, {3, 5}}));
}

TEST(Regex, GeneralCategoriesIncludeUnicode16) {
  EXPECT_EQ(matches("\\p{S}", "\xF0\x9F\xAB\xA8"), (Spans{{0, 4}}));  // U+1FAE8, new in 15.0
  EXPECT_EQ(matches("\\p{L}+", "x\xF0\x90\xB5\x8Ay"), (Spans{{0, 6}}));  // Garay U+10D4A, new in 16.0
  EXPECT_TRUE(matches("\\p{L}", "\xF0\x90\xA5\x80").empty());          // U+10940: 17.0, not yet
  EXPECT_EQ(matches("[^\\p{L}\\p{S}]+", "a\xF0\x9F\xAB\xA8-"), (Spans{{5, 6}}));
  EXPECT_EQ(matches("\\P{L}+", "x\xF0\x90\xB5\x8A-"), (Spans{{5, 6}}));
  EXPECT_EQ(matches("\\d+", "12\xD9\xA3\xC2\xB2"), (Spans{{0, 4}}));  // ٣ is Nd, ² is not
}

TEST(Regex, AnchorsAreLineAnchorsAsInRuby) {
  EXPECT_EQ(matches("\\s+$", "ab  \ncd  \n"), (Spans{{2, 4}, {7, 10}}));
  EXPECT_EQ(matches("^a", "ab\nab"), (Spans{{0, 1}, {3, 4}}));
}

TEST(Regex, EmptyMatchesFollowOnigFindIter) {
  EXPECT_EQ(matches("a*", "baab"), (Spans{{0, 0}, {1, 3}, {4, 4}}));
  EXPECT_EQ(matches("", "ab"), (Spans{{0, 0}, {1, 1}, {2, 2}}));
  EXPECT_EQ(matches("", "\xC3\xA9"), (Spans{{0, 0}, {2, 2}}));  // advances a whole character
}

TEST(Regex, RejectsConstructsThatDiffer) {
  expect_rejected("\\w+", "\\w");
  expect_rejected("a\\b", "\\b");
  expect_rejected("[[:alpha:]]", "POSIX");
  expect_rejected("[a-z&&[^aeiou]]", "intersection");
  expect_rejected("[a[b]]", "nested class");
  expect_rejected("[\\S]", "\\S inside");
  expect_rejected("[\\P{L}]", "inside a character class");
  expect_rejected("abc\\", "lone backslash");
}

TEST(Regex, TranslatesUnicodeEscapesAndLiterals) {
  EXPECT_EQ(translate_onig_pattern("\\u00e9"), "\\x{00e9}");
  EXPECT_EQ(matches("\\u00e9", "x\xC3\xA9"), (Spans{{1, 3}}));
  EXPECT_EQ(matches(escape_literal("a.b*"), "a.b*ab"), (Spans{{0, 4}}));
}

TEST(Regex, BadPatternIsAClearError) {
  try {
    Regex r("(unclosed");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(unclosed"), std::string::npos) << e.what();
  }
}

TEST(Regex, LongRunsDoNotExhaustTheStack) {
  const std::string spaces(1 << 20, ' ');
  EXPECT_EQ(matches("\\s+(?!\\S)|\\s+", spaces + "x"), (Spans{{0, spaces.size() - 1}, {spaces.size() - 1, spaces.size()}}));
  const std::string letters(1 << 20, 'a');
  EXPECT_EQ(matches("[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+", letters), (Spans{{0, letters.size()}}));
}

}  // namespace
}  // namespace mlaserve::tokenizer
