// Conformance against Hugging Face tokenizers on the tokenizers that are always available:
// the committed tiny tokenizer and the two that make_golden.py trains at test time (small:
// V3's structure; variant: the added-token flags, Split behaviours and ByteLevel options V3
// does not use). Also Split behaviours one by one against HF's pre_tokenize_str.
#include <gtest/gtest.h>

#include "conformance_checks.h"
#include "tokenizer/pre_tokenizer.h"

namespace mlaserve::tokenizer {
namespace {

using testing::check_decode;
using testing::check_encode;
using testing::read_jsonl;
using testing::tokenizer_dir;

class GoldenTokenizer : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTokenizer, EncodesLikeHuggingFace) {
  const Tokenizer tok = Tokenizer::load(tokenizer_dir(GetParam()));
  EXPECT_GE(check_encode(tok, GetParam()), 1000u);
}

TEST_P(GoldenTokenizer, DecodesAndStreamsLikeHuggingFace) {
  const Tokenizer tok = Tokenizer::load(tokenizer_dir(GetParam()));
  EXPECT_GE(check_decode(tok, GetParam()), 400u);
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, GoldenTokenizer, ::testing::Values("tiny", "small", "variant"));

SplitBehavior behavior_of(const std::string& name) {
  if (name == "removed") return SplitBehavior::kRemoved;
  if (name == "isolated") return SplitBehavior::kIsolated;
  if (name == "merged_with_previous") return SplitBehavior::kMergedWithPrevious;
  if (name == "merged_with_next") return SplitBehavior::kMergedWithNext;
  return SplitBehavior::kContiguous;
}

TEST(GoldenPreTokenizer, SplitBehavioursMatchHuggingFace) {
  const auto rows = read_jsonl("pretokenize.jsonl");
  ASSERT_GT(rows.size(), 500u);
  for (const auto& row : rows) {
    SplitSpec split{row.at("pattern").get<std::string>(), row.at("is_regex").get<bool>(),
                    behavior_of(row.at("behavior").get<std::string>()), row.at("invert").get<bool>()};
    const PreTokenizer pre(PreTokenizerSpec{{split}, ByteLevelSpec{false, false}});
    std::vector<std::string> pieces;
    pre.split(row.at("text").get<std::string>(), [&](std::string_view p) { pieces.emplace_back(p); });
    EXPECT_EQ(pieces, row.at("pieces").get<std::vector<std::string>>()) << row.dump();
  }
}

}  // namespace
}  // namespace mlaserve::tokenizer
