// The Tokenizer API on the committed tiny tokenizer (tests/data/tiny-tokenizer): special ids
// read from the files, BOS handling, error reporting, and thread safety.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <thread>

#include "core/error.h"

namespace mlaserve::tokenizer {
namespace {

const std::filesystem::path kTiny = std::filesystem::path(MLASERVE_SOURCE_DIR) / "tests/data/tiny-tokenizer";

TEST(Tokenizer, TinyTokenizerHasV3SpecialTokens) {
  const Tokenizer tok = Tokenizer::load(kTiny);
  EXPECT_LE(tok.vocab_size(), 1000);
  EXPECT_EQ(tok.bos_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.token_to_id("<｜▁pad▁｜>"), 2);
  EXPECT_TRUE(tok.token_to_id("<｜User｜>").has_value());
  EXPECT_TRUE(tok.token_to_id("<｜tool▁sep｜>").has_value());
  EXPECT_EQ(tok.id_to_token(*tok.token_to_id("<｜Assistant｜>")), "<｜Assistant｜>");
  EXPECT_TRUE(tok.config().chat_template.has_value());
  const auto context = tok.template_context();
  EXPECT_EQ(context["bos_token"], "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(context["eos_token"], "<｜end▁of▁sentence｜>");
}

TEST(Tokenizer, BosFollowsTheConfig) {
  const Tokenizer tok = Tokenizer::load(kTiny);
  const std::vector<int32_t> plain = tok.encode("hello world");
  std::vector<int32_t> with_bos = {*tok.bos_id()};
  with_bos.insert(with_bos.end(), plain.begin(), plain.end());
  EXPECT_EQ(tok.encode("hello world", true), with_bos);
  EXPECT_EQ(tok.decode(with_bos, true), "hello world");
  EXPECT_EQ(tok.decode(with_bos, false), "<｜begin▁of▁sentence｜>hello world");
}

TEST(Tokenizer, SpecialTokensInsideText) {
  const Tokenizer tok = Tokenizer::load(kTiny);
  const int32_t user = *tok.token_to_id("<｜User｜>");
  const std::vector<int32_t> ids = tok.encode("a<｜User｜>b");
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], user);
  EXPECT_EQ(tok.decode(ids, true), "a<｜User｜>b");  // <｜User｜> is not flagged special
  EXPECT_GT(tok.encode("<|User|>").size(), 1u);     // the ASCII look-alike is ordinary text
}

TEST(Tokenizer, InvalidUtf8IsAClearError) {
  const Tokenizer tok = Tokenizer::load(kTiny);
  try {
    tok.encode("ok \xC3\x28 bad");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid UTF-8 (byte 0xC3 at offset 3)"), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, UnknownIdIsAClearError) {
  const Tokenizer tok = Tokenizer::load(kTiny);
  const std::vector<int32_t> ids = {5, tok.vocab_size() + 7};
  try {
    tok.decode(ids);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id " + std::to_string(tok.vocab_size() + 7)), std::string::npos);
  }
  EXPECT_FALSE(tok.id_to_token(-1).has_value());
}

TEST(Tokenizer, ConcurrentEncodesAgree) {
  const Tokenizer tok = Tokenizer::load(kTiny);
  std::string text;
  for (int i = 0; i < 200; ++i) text += "The model " + std::to_string(i * 7919) + " serves tokens, fast! ";
  const std::vector<int32_t> expected = tok.encode(text);
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) ok[t] += tok.encode(text) == expected;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok, std::vector<int>(4, 20));
}

}  // namespace
}  // namespace mlaserve::tokenizer
