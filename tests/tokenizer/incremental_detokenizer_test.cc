// Property test of streaming decode on the tiny tokenizer: for random id sequences, with many
// tokens that are only part of a UTF-8 character, every chunk is valid UTF-8 and the chunks
// add up to the full decode, with and without skip_special_tokens.
#include "tokenizer/incremental_detokenizer.h"

#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace mlaserve::tokenizer {
namespace {

const std::filesystem::path kTiny = std::filesystem::path(MLASERVE_SOURCE_DIR) / "tests/data/tiny-tokenizer";

TEST(IncrementalDetokenizer, ChunksAddUpToTheFullDecode) {
  const Tokenizer tok = Tokenizer::load(kTiny);
  std::vector<int32_t> partial;  // ids whose bytes are not valid UTF-8 alone
  std::vector<int32_t> all;
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    if (!tok.has_id(id)) continue;
    all.push_back(id);
    if (!utf8::is_valid(tok.token_bytes(id))) partial.push_back(id);
  }
  ASSERT_GE(partial.size(), 64u);
  std::mt19937 rng(42);
  for (int round = 0; round < 3000; ++round) {
    std::vector<int32_t> ids(1 + rng() % 20);
    for (auto& id : ids) id = (rng() % 2 ? partial[rng() % partial.size()] : all[rng() % all.size()]);
    for (const bool skip : {false, true}) {
      IncrementalDetokenizer stream(tok, skip);
      std::string streamed;
      for (const int32_t id : ids) {
        const std::string chunk = stream.push(id);
        ASSERT_TRUE(utf8::is_valid(chunk));
        streamed += chunk;
      }
      streamed += stream.flush();
      ASSERT_EQ(streamed, tok.decode(ids, skip)) << "round " << round;
    }
  }
}

TEST(IncrementalDetokenizer, HoldsBackASplitCharacter) {
  const Tokenizer tok = Tokenizer::load(kTiny);
  const std::vector<int32_t> ids = tok.encode("a\xF0\x9F\x98\x80");  // 'a' + U+1F600 as byte tokens
  ASSERT_GE(ids.size(), 2u);
  IncrementalDetokenizer stream(tok, false);
  std::string out;
  for (size_t i = 0; i + 1 < ids.size(); ++i) out += stream.push(ids[i]);
  EXPECT_EQ(out, "a");  // the emoji is not complete yet
  out += stream.push(ids.back());
  EXPECT_EQ(out, "a\xF0\x9F\x98\x80");
  EXPECT_EQ(stream.flush(), "");
}

TEST(IncrementalDetokenizer, FlushEmitsReplacementForAnUnfinishedCharacter) {
  const Tokenizer tok = Tokenizer::load(kTiny);
  const std::vector<int32_t> ids = tok.encode("\xE6\x97\xA5");  // 日, three byte tokens in the tiny vocab
  ASSERT_EQ(ids.size(), 3u);
  IncrementalDetokenizer stream(tok, false);
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.push(ids[1]), "");
  EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD");
  std::string again = stream.push(ids[0]);  // the detokenizer is reusable after flush
  again += stream.push(ids[1]);
  again += stream.push(ids[2]);
  EXPECT_EQ(again, "\xE6\x97\xA5");
}

TEST(IncrementalDetokenizer, SkipsSpecialTokensAndRejectsUnknownIds) {
  const Tokenizer tok = Tokenizer::load(kTiny);
  IncrementalDetokenizer stream(tok, true);
  EXPECT_EQ(stream.push(*tok.eos_id()), "");
  EXPECT_THROW(stream.push(-3), Error);
}

}  // namespace
}  // namespace mlaserve::tokenizer
