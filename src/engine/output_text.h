// OutputText: one request's generated text and its stop strings.
//
// Tokens are fed through the request's TextDecoder; the text so far is searched for the stop
// strings (only where a new match can start). On a match the text is cut before it and the
// request stops (OpenAI: the stop sequence is not returned). While the request runs, take()
// hands out only text that can no longer turn into a stop string: the longest tail that is a
// proper prefix of some stop string is held back until the next token settles it. That tail
// starts at a character boundary (stop strings are valid UTF-8 and the decoder returns whole
// characters), so every piece handed out is valid UTF-8.
//
// Without a decoder (id-only requests) there is no text, and stop strings are refused earlier
// (Engine::add_request).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/text_decoder.h"

namespace mlaserve {

class OutputText {
 public:
  OutputText() = default;
  OutputText(std::unique_ptr<TextDecoder> decoder, std::vector<std::string> stop);

  bool has_decoder() const { return decoder_ != nullptr; }

  // Adds a generated token's text. True when a stop string now appears (the text is cut).
  bool append(int32_t token);
  // The request ends for another reason: adds the decoder's held-back text. True when that
  // completes a stop string (the text is cut).
  bool finish();
  // Text not handed out yet: all of it when `all`, else all but a possible stop-string start.
  std::string take(bool all);
  // The stop string that matched ("" if none).
  const std::string& matched_stop() const { return matched_; }

 private:
  bool add_and_search(const std::string& piece);
  size_t held_back() const;

  std::unique_ptr<TextDecoder> decoder_;
  std::vector<std::string> stop_;
  size_t max_stop_len_ = 0;
  std::string text_;   // the output's text (cut at a stop string)
  size_t taken_ = 0;   // bytes of text_ handed out
  std::string matched_;
};

}  // namespace mlaserve
