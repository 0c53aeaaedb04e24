// Fuzz target: the tokenizer on what a request can send it (tests/data/tiny-tokenizer, the
// byte-level BPE and DeepSeek's added tokens).
// Input: a flags byte (bit 0: add_special_tokens, bit 1: skip_special_tokens), then bytes that
// are both a text and a list of token ids (4 bytes each). Checked:
//   - text: valid UTF-8 encodes to existing ids that decode back to it (with BOS first when
//     asked for); invalid UTF-8 is refused with mlaserve::Error;
//   - ids: known ids decode to valid UTF-8, equal to what the incremental detokenizer streams
//     (push each, then flush); an unknown id is refused with mlaserve::Error.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "tokenizer/incremental_detokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace mlaserve::tokenizer {
namespace {

void check_text(const Tokenizer& tok, std::string_view text, bool add_special_tokens) {
  std::vector<int32_t> ids;
  try {
    ids = tok.encode(text, add_special_tokens);
  } catch (const Error&) {
    if (utf8::is_valid(text)) std::abort();  // valid text must always encode
    return;
  }
  if (!utf8::is_valid(text)) std::abort();
  for (int32_t id : ids) {
    if (!tok.has_id(id)) std::abort();
  }
  std::string expected(text);
  if (add_special_tokens && tok.bos_id()) expected = std::string(tok.token_bytes(*tok.bos_id())) + expected;
  if (tok.decode(ids) != expected) std::abort();
}

void check_ids(const Tokenizer& tok, std::string_view bytes, bool skip_special_tokens) {
  std::vector<int32_t> ids(bytes.size() / 4);
  if (!ids.empty()) std::memcpy(ids.data(), bytes.data(), ids.size() * 4);
  for (int32_t& id : ids) id = static_cast<int32_t>(static_cast<uint32_t>(id) % (tok.vocab_size() + 8u));
  std::string text;
  try {
    text = tok.decode(ids, skip_special_tokens);
  } catch (const Error&) {
    for (int32_t id : ids) {
      if (!tok.has_id(id)) return;
    }
    std::abort();  // every id exists: decode must succeed
  }
  if (!utf8::is_valid(text)) std::abort();
  IncrementalDetokenizer stream(tok, skip_special_tokens);
  std::string streamed;
  for (int32_t id : ids) {
    const std::string piece = stream.push(id);
    if (!utf8::is_valid(piece)) std::abort();
    streamed += piece;
  }
  streamed += stream.flush();
  if (streamed != text) std::abort();
}

}  // namespace
}  // namespace mlaserve::tokenizer

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mlaserve::tokenizer;
  static const Tokenizer tok = Tokenizer::load(std::string(MLASERVE_SOURCE_DIR) + "/tests/data/tiny-tokenizer");
  if (size < 1) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  check_text(tok, rest, (data[0] & 1) != 0);
  check_ids(tok, rest, (data[0] & 2) != 0);
  return 0;
}
