#include "tokenizer/added_vocabulary.h"

#include <gtest/gtest.h>

namespace mlaserve::tokenizer {
namespace {

// Segments as "text" for plain text and "#id:text" for added tokens.
std::vector<std::string> segments(const AddedVocabulary& v, std::string_view text) {
  std::vector<std::string> out;
  v.split(text, [&](AddedVocabulary::Segment s) {
    std::string item;
    if (s.token_id >= 0) item.append("#").append(std::to_string(s.token_id)).append(":");
    out.push_back(item.append(s.text));
  });
  return out;
}

AddedToken token(int32_t id, std::string content) {
  AddedToken t;
  t.id = id;
  t.content = std::move(content);
  return t;
}

TEST(AddedVocabulary, LeftmostLongestWithoutOverlap) {
  const AddedVocabulary v({token(10, "<a>"), token(11, "<a><b>"), token(12, "b>")});
  using V = std::vector<std::string>;
  EXPECT_EQ(segments(v, "x<a><b>y"), (V{"x", "#11:<a><b>", "y"}));
  EXPECT_EQ(segments(v, "<a><a>"), (V{"#10:<a>", "#10:<a>"}));
  EXPECT_EQ(segments(v, "<ab>"), (V{"<a", "#12:b>"}));
  EXPECT_EQ(segments(v, "plain"), (V{"plain"}));
  EXPECT_EQ(segments(v, ""), V{});
}

TEST(AddedVocabulary, StripFlagsTakeWhiteSpace) {
  AddedToken l = token(1, "<L>");
  l.lstrip = true;
  AddedToken r = token(2, "<R>");
  r.rstrip = true;
  const AddedVocabulary v({l, r});
  using V = std::vector<std::string>;
  EXPECT_EQ(segments(v, "a  <L>b"), (V{"a", "#1:  <L>", "b"}));
  EXPECT_EQ(segments(v, "a\xE3\x80\x80\n<L>"), (V{"a", "#1:\xE3\x80\x80\n<L>"}));  // U+3000 is White_Space
  EXPECT_EQ(segments(v, "x<R> \xC2\x85\ny"), (V{"x", "#2:<R> \xC2\x85\n", "y"}));
  EXPECT_EQ(segments(v, "<R>  <L>"), (V{"#2:<R>  ", "#1:<L>"}));  // lstrip stops at the previous match
}

TEST(AddedVocabulary, SingleWordNeedsNonWordNeighbours) {
  AddedToken w = token(5, "wd");
  w.single_word = true;
  const AddedVocabulary v({w});
  using V = std::vector<std::string>;
  EXPECT_EQ(segments(v, "a wd b"), (V{"a ", "#5:wd", " b"}));
  EXPECT_EQ(segments(v, "xwd"), (V{"xwd"}));
  EXPECT_EQ(segments(v, "wd_"), (V{"wd_"}));                 // _ is a word character (Pc)
  EXPECT_EQ(segments(v, "\xC2\xB2wd"), (V{"\xC2\xB2", "#5:wd"}));  // ² (No) is not
  EXPECT_EQ(segments(v, "\xE2\x80\x8Dwd"), (V{"\xE2\x80\x8Dwd"}));  // ZWJ (Join_Control) is
}

TEST(AddedVocabulary, RawTokensAreMatchedBeforeNormalizedOnes) {
  AddedToken raw = token(1, "ab");
  raw.normalized = false;
  AddedToken norm = token(2, "abc");
  norm.normalized = true;
  const AddedVocabulary v({raw, norm});
  EXPECT_EQ(segments(v, "xabcx"), (std::vector<std::string>{"x", "#1:ab", "cx"}));
}

}  // namespace
}  // namespace mlaserve::tokenizer
