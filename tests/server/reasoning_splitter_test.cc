// ReasoningSplitter on whole texts and on every way of cutting them into pieces: the split must
// not depend on where the stream's pieces begin and end.
#include <gtest/gtest.h>

#include "server/reasoning_splitter.h"

namespace mlaserve::server {
namespace {

SplitText split_in_pieces(const std::string& text, bool opened, size_t piece) {
  ReasoningSplitter s(opened);
  SplitText all;
  for (size_t i = 0; i < text.size(); i += piece) {
    SplitText part = s.push(text.substr(i, piece));
    all.reasoning += part.reasoning;
    all.content += part.content;
  }
  SplitText rest = s.finish();
  all.reasoning += rest.reasoning;
  all.content += rest.content;
  return all;
}

struct Case {
  std::string text;
  bool opened;
  std::string reasoning, content;
};

TEST(ReasoningSplitter, AnyPieceSizeGivesTheSameSplit) {
  const Case cases[] = {
      {"<think>plan</think>answer", false, "plan", "answer"},
      {"\n<think>\nplan\n</think>\n\nanswer", false, "\nplan\n", "\n\nanswer"},
      {"plan</think>answer", true, "plan", "answer"},
      {"plan with < and </thin k>", true, "plan with < and </thin k>", ""},  // never closed: all reasoning
      {"just an answer", false, "", "just an answer"},
      {"<thin", false, "", "<thin"},  // not a tag after all
      {"  ", false, "", "  "},
      {"answer <think>not at the start</think>", false, "", "answer <think>not at the start</think>"},
      {"<think></think>", false, "", ""},
      {"a</think>b</think>c", true, "a", "b</think>c"},
      {"", true, "", ""},
  };
  for (const Case& c : cases) {
    for (size_t piece = 1; piece <= c.text.size() + 1; ++piece) {
      SplitText s = split_in_pieces(c.text, c.opened, piece);
      EXPECT_EQ(s.reasoning, c.reasoning) << c.text << " piece " << piece;
      EXPECT_EQ(s.content, c.content) << c.text << " piece " << piece;
    }
  }
}

TEST(ReasoningSplitter, HoldsBackOnlyAPossibleTag) {
  ReasoningSplitter s(true);
  EXPECT_EQ(s.push("abc</th").reasoning, "abc");
  SplitText t = s.push("ink>xyz");
  EXPECT_EQ(t.reasoning, "");
  EXPECT_EQ(t.content, "xyz");
}

TEST(ReasoningSplitter, PromptOpensThink) {
  EXPECT_TRUE(prompt_opens_think("<｜User｜>hi<｜Assistant｜><think>\n"));
  EXPECT_TRUE(prompt_opens_think("<think>"));
  EXPECT_FALSE(prompt_opens_think("<｜User｜>hi<｜Assistant｜>"));
  EXPECT_FALSE(prompt_opens_think("<think>x</think>"));
}

}  // namespace
}  // namespace mlaserve::server
