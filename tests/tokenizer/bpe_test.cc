#include "tokenizer/bpe.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace mlaserve::tokenizer {
namespace {

// a=0 b=1 c=2, then merged tokens. Byte-level text of ASCII letters is the letters.
BpeSpec small_spec() {
  BpeSpec spec;
  spec.vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}, {"aa", 6}, {"Ġ", 7}};
  spec.merges = {{"b", "c"}, {"a", "bc"}, {"a", "b"}, {"a", "a"}};
  return spec;
}

std::vector<int32_t> encode(const BpeModel& m, std::string_view piece) {
  std::vector<int32_t> out;
  m.encode(piece, out);
  return out;
}

TEST(Bpe, MergesByRankThenLeftmost) {
  const BpeModel m(small_spec());
  EXPECT_EQ(encode(m, "abc"), (std::vector<int32_t>{5}));     // b c (rank 0) first, then a bc
  EXPECT_EQ(encode(m, "abab"), (std::vector<int32_t>{3, 3}));
  EXPECT_EQ(encode(m, "aaa"), (std::vector<int32_t>{6, 0}));  // the leftmost a a merges first
  EXPECT_EQ(encode(m, " "), (std::vector<int32_t>{7}));       // byte 0x20 is the character Ġ
  EXPECT_EQ(encode(m, "aaa"), (std::vector<int32_t>{6, 0}));  // again, from the cache
}

TEST(Bpe, UnknownBytesAreDroppedWithoutUnkToken) {
  const BpeModel m(small_spec());
  // 'z' is not in the vocabulary: dropped, and its neighbours then merge (as Hugging Face does).
  EXPECT_EQ(encode(m, "azb"), (std::vector<int32_t>{3}));
}

TEST(Bpe, UnknownBytesBecomeUnkAndFuse) {
  BpeSpec spec = small_spec();
  spec.vocab.emplace_back("<unk>", 8);
  spec.unk_token = "<unk>";
  spec.fuse_unk = true;
  const BpeModel m(spec);
  EXPECT_EQ(encode(m, "azzb"), (std::vector<int32_t>{0, 8, 1}));
}

TEST(Bpe, IgnoreMergesTakesWholeVocabularyEntries) {
  BpeSpec spec = small_spec();
  spec.merges = {{"a", "b"}};  // no rule builds "bc" or "abc"
  EXPECT_EQ(encode(BpeModel(spec), "abc"), (std::vector<int32_t>{3, 2}));
  spec.ignore_merges = true;
  EXPECT_EQ(encode(BpeModel(spec), "abc"), (std::vector<int32_t>{5}));
}

TEST(Bpe, LongPiecesMergeInLinearithmicTime) {
  const BpeModel m(small_spec());
  const std::string piece(200000, 'a');
  const std::vector<int32_t> ids = encode(m, piece);
  EXPECT_EQ(ids.size(), 100000u);
  EXPECT_EQ(ids.front(), 6);
}

TEST(Bpe, RejectsMergesOutsideTheVocabulary) {
  BpeSpec spec = small_spec();
  spec.merges.emplace_back("c", "c");  // "cc" is not a token
  EXPECT_THROW(BpeModel{spec}, Error);
  spec = small_spec();
  spec.merges.emplace_back("x", "a");
  EXPECT_THROW(BpeModel{spec}, Error);
}

}  // namespace
}  // namespace mlaserve::tokenizer
