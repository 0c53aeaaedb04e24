// Fuzz target: the Jinja engine on a chat template's source (a checkpoint is untrusted input):
// parsing it, then rendering a small conversation with the tiny tokenizer's special tokens.
// Both must either succeed or throw mlaserve::Error (the engine's TemplateError is one).
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using mlaserve::tokenizer::ChatTemplate;
  static const nlohmann::ordered_json kContext = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  static const nlohmann::ordered_json kMessages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi <think>"},
    {"role": "assistant", "content": null, "tool_calls": [{"type": "function",
     "function": {"name": "f", "arguments": "{\"x\": [1, 2.5, true]}"}}]},
    {"role": "tool", "content": "ok"},
    {"role": "user", "content": "Bye"}])");
  try {
    const ChatTemplate chat_template(std::string_view(reinterpret_cast<const char*>(data), size), kContext);
    chat_template.render(kMessages, {.add_generation_prompt = (size & 1) != 0});
  } catch (const mlaserve::Error&) {
  }
  return 0;
}
