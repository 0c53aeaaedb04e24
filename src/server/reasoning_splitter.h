// ReasoningSplitter: one chat choice's streamed text split into reasoning_content (between
// <think> and </think>, R1-style) and content (the rest), as the text arrives in pieces.
//
// States: kStart (nothing but whitespace seen: a "<think>" may still open), kReasoning,
// kContent. It starts in kReasoning when the prompt itself opened the block (R1's template
// ends the generation prompt with "<think>\n"), else in kStart. A piece that could be the start
// of a tag still to come ("</thi") is held back until the next piece settles it; finish()
// releases it. The tags themselves go to neither side. A reply that never closes its think
// block is all reasoning (as vLLM's deepseek_r1 parser does).
#pragma once

#include <string>
#include <string_view>

namespace mlaserve::server {

struct SplitText {
  std::string reasoning;
  std::string content;
};

class ReasoningSplitter {
 public:
  explicit ReasoningSplitter(bool prompt_opened_think);

  // Adds a piece of generated text; returns what is now settled.
  SplitText push(std::string_view text);
  // The text ended: returns whatever was held back.
  SplitText finish();

 private:
  enum class State { kStart, kReasoning, kContent };
  SplitText drain(bool final);

  State state_;
  std::string pending_;  // text not yet attributed
};

// Whether a rendered chat prompt ends inside an open think block ("...<think>\n").
bool prompt_opens_think(std::string_view prompt);

}  // namespace mlaserve::server
