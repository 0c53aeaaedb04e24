#include "tokenizer/pre_tokenizer.h"

#include <gtest/gtest.h>

namespace mlaserve::tokenizer {
namespace {

using Pieces = std::vector<std::string>;

// DeepSeek-V3's pre-tokenizer (MODEL_SPEC.md section 8.2).
PreTokenizerSpec v3_spec() {
  PreTokenizerSpec spec;
  spec.splits = {
      {R"(\p{N}{1,3})", true, SplitBehavior::kIsolated, false},
      {"[一-龥぀-ゟ゠-ヿ]+", true, SplitBehavior::kIsolated, false},
      {"[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
       "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
       true, SplitBehavior::kIsolated, false},
  };
  spec.byte_level = ByteLevelSpec{false, false};
  return spec;
}

Pieces split(const PreTokenizer& pre, std::string_view text) {
  Pieces out;
  pre.split(text, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}

TEST(PreTokenizer, DeepSeekV3Pieces) {
  const PreTokenizer pre(v3_spec());
  EXPECT_EQ(split(pre, "1234567"), (Pieces{"123", "456", "7"}));
  EXPECT_EQ(split(pre, "Hello, world!"), (Pieces{"Hello", ",", " world", "!"}));
  EXPECT_EQ(split(pre, "日本語のテキストabc"), (Pieces{"日本語のテキスト", "abc"}));
  EXPECT_EQ(split(pre, "a.b\r\n\r\n  x"), (Pieces{"a", ".b", "\r\n\r\n", " ", " x"}));
  EXPECT_EQ(split(pre, ""), Pieces{});
}

TEST(PreTokenizer, ByteLevelPrefixSpaceAndGpt2Regex) {
  const PreTokenizer pre(PreTokenizerSpec{{}, ByteLevelSpec{true, true}});
  EXPECT_EQ(split(pre, "Hello world's 42"), (Pieces{" Hello", " world", "'s", " 42"}));
  EXPECT_EQ(split(pre, " x"), (Pieces{" x"}));  // no second space when one is there
}

TEST(PreTokenizer, Behaviours) {
  auto with = [](SplitBehavior b, bool invert) {
    return PreTokenizer(PreTokenizerSpec{{{"-", false, b, invert}}, ByteLevelSpec{false, false}});
  };
  EXPECT_EQ(split(with(SplitBehavior::kRemoved, false), "a-b--c"), (Pieces{"a", "b", "c"}));
  EXPECT_EQ(split(with(SplitBehavior::kIsolated, false), "a-b--c"), (Pieces{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(split(with(SplitBehavior::kMergedWithPrevious, false), "a-b--c"), (Pieces{"a-", "b-", "-", "c"}));
  EXPECT_EQ(split(with(SplitBehavior::kMergedWithNext, false), "a-b--c"), (Pieces{"a", "-b", "-", "-c"}));
  EXPECT_EQ(split(with(SplitBehavior::kContiguous, false), "a-b--c"), (Pieces{"a", "-", "b", "--", "c"}));
  EXPECT_EQ(split(with(SplitBehavior::kRemoved, true), "a-b--c"), (Pieces{"-", "-", "-"}));
}

}  // namespace
}  // namespace mlaserve::tokenizer
