// The engine's only view of a tokenizer: an incremental detokenizer per request, for streamed
// text and stop strings. Requests that use neither need none, so the engine runs without a
// tokenizer for id-only work (benchmarks, tests). tokenizer_text_decoder.h adapts
// tokenizer::IncrementalDetokenizer to it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace mlaserve {

class TextDecoder {
 public:
  virtual ~TextDecoder() = default;
  // Feeds one generated token; returns the text that no later token can change.
  virtual std::string push(int32_t token) = 0;
  // Ends the stream: returns whatever was held back.
  virtual std::string flush() = 0;
};

class TextDecoderFactory {
 public:
  virtual ~TextDecoderFactory() = default;
  // A decoder for one request's output. Called from any thread.
  virtual std::unique_ptr<TextDecoder> make(bool skip_special_tokens) const = 0;
};

}  // namespace mlaserve
