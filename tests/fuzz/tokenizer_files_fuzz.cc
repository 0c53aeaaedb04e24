// Fuzz target: a tokenizer's files (a checkpoint is untrusted input): tokenizer.json, then a NUL
// byte, then tokenizer_config.json (the input without a NUL is tokenizer.json alone, with a
// config naming no special tokens). Loading must succeed or throw mlaserve::Error. A tokenizer
// that loads must encode a text (with its own first tokens in it) to existing ids that decode
// to valid UTF-8, and to that very text when its vocabulary has all 256 byte tokens and its
// ByteLevel step adds no prefix space (one that does puts a space before every piece that lacks
// one, as Hugging Face's does, so the text comes back with spaces in it); and build and render
// its chat template if it has one, or throw mlaserve::Error.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace {

// Whether the ByteLevel pre-tokenizer step of a tokenizer.json that loaded adds prefix spaces.
bool adds_prefix_space(std::string_view tokenizer_json) {
  const nlohmann::json root = nlohmann::json::parse(tokenizer_json);
  const nlohmann::json& pre = root.at("pre_tokenizer");
  const auto byte_level_adds = [](const nlohmann::json& step) {
    return step.at("type") == "ByteLevel" && step.at("add_prefix_space").get<bool>();
  };
  if (pre.at("type") == "ByteLevel") return byte_level_adds(pre);
  return std::any_of(pre.at("pretokenizers").begin(), pre.at("pretokenizers").end(), byte_level_adds);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mlaserve::tokenizer;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view tokenizer_json = input.substr(0, nul);
  const std::string_view config_json = nul == std::string_view::npos ? "{}" : input.substr(nul + 1);
  std::optional<Tokenizer> tok;
  try {
    tok.emplace(Tokenizer::from_json(tokenizer_json, config_json));
  } catch (const mlaserve::Error&) {
    return 0;
  }
  // A text from the first ids' bytes, kept valid UTF-8; the tokenizer must round-trip it.
  std::string text = "Hello, world! 123 \xe4\xb8\x96 ";
  for (int32_t id = 0; id < std::min(tok->vocab_size(), 64); ++id) {
    if (tok->has_id(id)) text += tok->token_bytes(id);
  }
  text.resize(utf8::valid_prefix_length(text));
  const std::vector<int32_t> ids = tok->encode(text, /*add_special_tokens=*/false);
  for (int32_t id : ids) {
    if (!tok->has_id(id)) std::abort();
  }
  const std::string decoded = tok->decode(ids);
  if (!utf8::is_valid(decoded)) std::abort();
  bool every_byte = true;
  for (int b = 0; b < 256; ++b) {
    every_byte = every_byte && tok->token_to_id(byte_level::encode(std::string(1, static_cast<char>(b)))).has_value();
  }
  if (every_byte && !adds_prefix_space(tokenizer_json) && decoded != text) std::abort();
  if (tok->config().chat_template) {
    try {
      const ChatTemplate chat_template = ChatTemplate::from_tokenizer(*tok);
      chat_template.render(nlohmann::ordered_json::parse(R"([{"role": "user", "content": "Hi"}])"),
                           {.add_generation_prompt = true});
    } catch (const mlaserve::Error&) {
    }
  }
  return 0;
}
