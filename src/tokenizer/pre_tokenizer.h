// Pre-tokenization: cuts a text segment (one that is not an added token) into the pieces the
// BPE model encodes one by one, as tokenizer.json's "pre_tokenizer" declares.
//
// Supported: a Sequence of Split steps followed by one ByteLevel step (DeepSeek V2 and V3 both
// have exactly this shape), or a lone ByteLevel. Each Split runs on every piece the previous
// step produced (so look-arounds and anchors see only that piece), pairs its matches with the
// gaps between them, flips them if `invert`, and applies its behaviour:
//   Removed             drop the matches
//   Isolated            matches and gaps are pieces of their own
//   MergedWithPrevious  a match joins the piece before it (unless that is a match too)
//   MergedWithNext      a match joins the gap after it
//   Contiguous          runs of matches, and runs of gaps, become one piece each
// Empty pieces are dropped. ByteLevel then optionally prefixes a space (add_prefix_space)
// and splits with the GPT-2 regex (use_regex). Its byte-to-character mapping is not done
// here: pieces stay raw bytes, and the BPE model starts from the byte symbols directly.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/function_ref.h"
#include "tokenizer/regex.h"

namespace mlaserve::tokenizer {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct SplitSpec {
  std::string pattern;  // an Oniguruma-syntax regex, or a literal string
  bool is_regex = true;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
};

struct ByteLevelSpec {
  bool add_prefix_space = false;
  bool use_regex = true;
};

struct PreTokenizerSpec {
  std::vector<SplitSpec> splits;  // applied in order
  ByteLevelSpec byte_level;       // always last
};

class PreTokenizer {
 public:
  using PieceSink = FunctionRef<void(std::string_view)>;

  explicit PreTokenizer(const PreTokenizerSpec& spec);

  // Calls sink(piece) for each non-empty piece of `text` (valid UTF-8), in order. A piece may
  // live in a temporary buffer (when a prefix space was added): copy it to keep it.
  void split(std::string_view text, PieceSink sink) const;

 private:
  struct Step {
    Regex regex;
    SplitBehavior behavior;
    bool invert;
  };

  void enter(size_t step, std::string_view piece, PieceSink sink) const;
  void apply(size_t step, std::string_view piece, PieceSink sink) const;

  std::vector<Step> steps_;     // the Split steps, then ByteLevel's regex when use_regex
  size_t byte_level_step_ = 0;  // index of the step at which ByteLevel begins
  bool add_prefix_space_ = false;
};

}  // namespace mlaserve::tokenizer
