// Conformance on DeepSeek-V3's real tokenizer (../shared/data/deepseek-v3-tokenizer), when that
// folder exists: encode and decode against Hugging Face tokenizers on the generated corpus,
// the special ids as the files give them, and streaming decode on random ids.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "conformance_checks.h"

namespace mlaserve::tokenizer {
namespace {

const std::filesystem::path kV3Dir = std::filesystem::path(MLASERVE_SHARED_DATA) / "deepseek-v3-tokenizer";

class V3Tokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (std::filesystem::exists(kV3Dir / "tokenizer.json")) tok_ = new Tokenizer(Tokenizer::load(kV3Dir));
  }
  static void TearDownTestSuite() {
    delete tok_;
    tok_ = nullptr;
  }
  void SetUp() override {
    if (tok_ == nullptr) GTEST_SKIP() << "DeepSeek-V3 tokenizer not found at " << kV3Dir << " (../shared/data is absent)";
  }
  static Tokenizer* tok_;
};
Tokenizer* V3Tokenizer::tok_ = nullptr;

TEST_F(V3Tokenizer, EncodesLikeHuggingFace) { EXPECT_GE(testing::check_encode(*tok_, "v3"), 1000u); }

TEST_F(V3Tokenizer, DecodesAndStreamsLikeHuggingFace) { EXPECT_GE(testing::check_decode(*tok_, "v3"), 400u); }

TEST_F(V3Tokenizer, SpecialIdsComeFromTheFiles) {
  EXPECT_EQ(tok_->vocab_size(), 128815);
  EXPECT_EQ(tok_->bos_id(), 0);
  EXPECT_EQ(tok_->eos_id(), 1);
  EXPECT_EQ(tok_->token_to_id("<｜User｜>"), 128803);
  EXPECT_EQ(tok_->token_to_id("<｜Assistant｜>"), 128804);
  EXPECT_EQ(tok_->token_to_id("<｜tool▁sep｜>"), 128814);
  EXPECT_TRUE(tok_->is_special(0));
  EXPECT_FALSE(tok_->is_special(128803));  // <｜User｜> is an added token, not a special one
  EXPECT_EQ(tok_->encode("Hi", true).front(), 0);
}

TEST_F(V3Tokenizer, MatchesTheSpecExamples) {
  // MODEL_SPEC.md section 10.9: digits in threes, CJK plus kana runs, punctuation + letters.
  auto pieces = [&](const std::string& text) {
    std::vector<std::string> out;
    for (const int32_t id : tok_->encode(text)) out.emplace_back(tok_->decode(std::vector<int32_t>{id}));
    return out;
  };
  EXPECT_EQ(pieces("1234567"), (std::vector<std::string>{"123", "456", "7"}));
  EXPECT_EQ(tok_->encode("<|User|>").size(), 5u);  // the ASCII look-alike is ordinary text
}

TEST_F(V3Tokenizer, StreamingEqualsFullDecodeOnRandomIds) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> any(0, tok_->vocab_size() - 1);
  for (int round = 0; round < 300; ++round) {
    std::vector<int32_t> ids(1 + rng() % 30);
    for (auto& id : ids) id = any(rng);
    for (const bool skip : {false, true}) {
      IncrementalDetokenizer stream(*tok_, skip);
      std::string streamed;
      for (const int32_t id : ids) {
        const std::string chunk = stream.push(id);
        ASSERT_TRUE(utf8::is_valid(chunk));
        streamed += chunk;
      }
      streamed += stream.flush();
      ASSERT_EQ(streamed, tok_->decode(ids, skip));
    }
  }
}

}  // namespace
}  // namespace mlaserve::tokenizer
