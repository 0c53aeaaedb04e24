// OutputText: stop strings across token boundaries (cut before the match, the tail that could
// still become one held back), the decoder's tail at the end, and the real tokenizer's
// incremental detokenizer behind the TextDecoder interface.
#include <gtest/gtest.h>

#include <map>

#include "engine/output_text.h"
#include "engine/tokenizer_text_decoder.h"
#include "tokenizer/tokenizer.h"

namespace mlaserve {
namespace {

// Token i decodes to pieces[i]; the last piece is held back until flush() (like an incomplete
// UTF-8 character).
class TableDecoder final : public TextDecoder {
 public:
  explicit TableDecoder(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {}
  std::string push(int32_t token) override {
    std::string out = std::move(pending_);
    pending_ = pieces_.at(static_cast<size_t>(token));
    return out;
  }
  std::string flush() override { return std::exchange(pending_, ""); }

 private:
  std::vector<std::string> pieces_;
  std::string pending_;
};

struct TextRun {
  std::string streamed;        // the concatenation of every take()
  std::vector<std::string> pieces;
  bool stopped = false;
};

TextRun run(const std::vector<std::string>& table, const std::vector<int32_t>& ids, std::vector<std::string> stop) {
  OutputText text(std::make_unique<TableDecoder>(table), std::move(stop));
  TextRun r;
  for (int32_t id : ids) {
    r.stopped = text.append(id);
    r.pieces.push_back(text.take(r.stopped));
    r.streamed += r.pieces.back();
    if (r.stopped) return r;
  }
  r.stopped = text.finish();
  r.streamed += text.take(true);
  return r;
}

TEST(OutputText, WithoutStopStringsEverythingIsStreamedOnce) {
  const std::vector<std::string> table{"Hel", "lo ", "world", "!"};
  TextRun r = run(table, {0, 1, 2, 3}, {});
  EXPECT_EQ(r.streamed, "Hello world!");
  EXPECT_FALSE(r.stopped);
}

TEST(OutputText, AStopStringSpanningTokensCutsTheTextBeforeIt) {
  const std::vector<std::string> table{"Hel", "lo ", "wor", "ld", "x"};
  TextRun r = run(table, {0, 1, 2, 3, 4}, {"o w"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.streamed, "Hell");
}

TEST(OutputText, APossibleStopStartIsHeldBackUntilSettled) {
  const std::vector<std::string> table{"ab", "cX", "cd", "e", "f"};
  OutputText text(std::make_unique<TableDecoder>(table), {"cde"});
  EXPECT_FALSE(text.append(0));
  EXPECT_EQ(text.take(false), "");    // nothing decoded yet (the table decoder lags a token)
  EXPECT_FALSE(text.append(1));       // "ab"
  EXPECT_EQ(text.take(false), "ab");
  EXPECT_FALSE(text.append(2));       // "abcX": "c" was a possible start, "cX" is not
  EXPECT_EQ(text.take(false), "cX");
  EXPECT_FALSE(text.append(3));       // "abcXcd": "cd" is held back
  EXPECT_EQ(text.take(false), "");
  EXPECT_TRUE(text.append(4));        // "abcXcde": stop
  EXPECT_EQ(text.matched_stop(), "cde");
  EXPECT_EQ(text.take(false), "");
  EXPECT_FALSE(text.append(0));       // after a stop nothing more is added
}

TEST(OutputText, TheEarliestOfSeveralStopStringsWins) {
  const std::vector<std::string> table{"one two three", "."};
  OutputText text(std::make_unique<TableDecoder>(table), {"three", "two", "e t"});
  text.append(0);
  EXPECT_TRUE(text.append(1));
  EXPECT_EQ(text.matched_stop(), "e t");
  EXPECT_EQ(text.take(true), "on");
}

TEST(OutputText, TheDecodersTailCountsWhenTheRequestEnds) {
  const std::vector<std::string> table{"ab", "c!"};
  TextRun r = run(table, {0, 1}, {"c!"});  // "c!" only comes out of flush()
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.streamed, "ab");
  r = run(table, {0, 1}, {"zz"});
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.streamed, "abc!");
}

class TokenizerText : public ::testing::Test {
 protected:
  tokenizer::Tokenizer tok = tokenizer::Tokenizer::load(std::string(MLASERVE_SOURCE_DIR) + "/tests/data/tiny-tokenizer");
};

TEST_F(TokenizerText, StreamedTextEqualsTheTokenizersDecode) {
  TokenizerTextDecoderFactory factory(tok);
  const std::string source = "Hello wörld, héllo 🌍 world!";
  const std::vector<int32_t> ids = tok.encode(source);
  OutputText text(factory.make(true), {});
  std::string streamed;
  for (int32_t id : ids) {
    text.append(id);
    streamed += text.take(false);
  }
  text.finish();
  streamed += text.take(true);
  EXPECT_EQ(streamed, tok.decode(ids, true));
}

TEST_F(TokenizerText, IdsPastTheTokenizersVocabularyHaveNoText) {
  TokenizerTextDecoderFactory factory(tok);
  std::unique_ptr<TextDecoder> d = factory.make(true);
  EXPECT_EQ(d->push(tok.vocab_size() + 5), "");
  const std::vector<int32_t> ids = tok.encode("ok");
  std::string text;
  for (int32_t id : ids) text += d->push(id);
  EXPECT_EQ(text + d->flush(), "ok");
}

TEST_F(TokenizerText, StopStringCutsTheDecodedText) {
  TokenizerTextDecoderFactory factory(tok);
  const std::vector<int32_t> ids = tok.encode("Hello wörld, héllo world!");
  OutputText text(factory.make(true), {"héllo"});
  std::string streamed;
  bool stopped = false;
  for (int32_t id : ids) {
    stopped = text.append(id);
    streamed += text.take(stopped);
    if (stopped) break;
  }
  EXPECT_TRUE(stopped);
  EXPECT_EQ(streamed, "Hello wörld, ");
}

}  // namespace
}  // namespace mlaserve
