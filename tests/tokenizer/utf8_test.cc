#include "tokenizer/utf8.h"

#include <gtest/gtest.h>

#include <random>

namespace mlaserve::tokenizer::utf8 {
namespace {

std::string lossy(std::string_view bytes) {
  std::string out;
  append_lossy(out, bytes);
  return out;
}

const std::string kFFFD = "\xEF\xBF\xBD";

TEST(Utf8, Validation) {
  EXPECT_TRUE(is_valid(""));
  EXPECT_TRUE(is_valid("abc é 日本 \xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid("\xC0\x80"));          // overlong
  EXPECT_FALSE(is_valid("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(is_valid("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(is_valid("ab\xE2\x82"));        // truncated
  EXPECT_EQ(valid_prefix_length("ab\xFF" "cd"), 2u);
}

TEST(Utf8, LossyReplacesEachMaximalSubpart) {
  // Expected values are what Python's bytes.decode("utf-8", "replace") and Rust's
  // String::from_utf8_lossy give.
  EXPECT_EQ(lossy("\xE2\x82"), kFFFD);
  EXPECT_EQ(lossy("\xF0\x80"), kFFFD + kFFFD);
  EXPECT_EQ(lossy("\xC0\xAF"), kFFFD + kFFFD);
  EXPECT_EQ(lossy("a\xE2\x82\xAC" "b\xFF"), "a\xE2\x82\xAC" "b" + kFFFD);
  EXPECT_EQ(lossy("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD);
  EXPECT_EQ(lossy("\xF4\x90\x80\x80"), kFFFD + kFFFD + kFFFD + kFFFD);
  EXPECT_EQ(lossy("\xE2\x82\xE2\x82\xAC"), kFFFD + "\xE2\x82\xAC");
  EXPECT_EQ(lossy("\xF0\x9F\x98"), kFFFD);
}

TEST(Utf8, IncompleteSuffix) {
  EXPECT_EQ(incomplete_suffix_length("abc\xE2\x82"), 2u);
  EXPECT_EQ(incomplete_suffix_length("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(incomplete_suffix_length("\xF0\x9F\x98\x80"), 0u);
  EXPECT_EQ(incomplete_suffix_length("\xE2"), 1u);
  EXPECT_EQ(incomplete_suffix_length("\xC0"), 0u);
  EXPECT_EQ(incomplete_suffix_length("\xED\xA0"), 0u);
  EXPECT_EQ(incomplete_suffix_length("\x80"), 0u);
  EXPECT_EQ(incomplete_suffix_length("\xF0\x80"), 0u);
  EXPECT_EQ(incomplete_suffix_length(""), 0u);
}

// Splitting a byte stream anywhere, holding back the incomplete suffix of the first part and
// decoding it with the rest, gives the same text as decoding the whole: the invariant the
// streaming detokenizer relies on.
TEST(Utf8, HoldingBackTheIncompleteSuffixIsExact) {
  const unsigned char alphabet[] = {'a', 0x80, 0x8F, 0x9F, 0xA0, 0xBF, 0xC2, 0xDF, 0xE0, 0xE2, 0xED, 0xF0, 0xF4, 0xF5, 0xFF};
  std::mt19937 rng(7);
  for (int round = 0; round < 20000; ++round) {
    std::string bytes(rng() % 9, '\0');
    for (char& c : bytes) c = static_cast<char>(alphabet[rng() % sizeof(alphabet)]);
    const size_t cut = bytes.empty() ? 0 : rng() % (bytes.size() + 1);
    const std::string_view head = std::string_view(bytes).substr(0, cut);
    const size_t held = incomplete_suffix_length(head);
    const std::string streamed = lossy(head.substr(0, cut - held)) + lossy(bytes.substr(cut - held));
    ASSERT_EQ(streamed, lossy(bytes)) << "round " << round;
  }
}

TEST(Utf8, DecodeAndAppendRoundTrip) {
  const std::string s = "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80";
  size_t i = 0;
  std::string back;
  while (i < s.size()) append(back, decode(s, i));
  EXPECT_EQ(back, s);
  EXPECT_EQ(decode_before(s, s.size()), U'\U0001F600');
  EXPECT_EQ(count_code_points(s), 4u);
}

}  // namespace
}  // namespace mlaserve::tokenizer::utf8
