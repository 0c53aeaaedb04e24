// ChatTemplate: turns a conversation into the prompt text a model was trained on, by
// rendering the Jinja chat_template of its tokenizer_config.json the way transformers'
// apply_chat_template does (jinja2 with trim_blocks and lstrip_blocks, loop controls, its
// tojson and raise_exception, and the special tokens as variables).
//
// The engine is a Jinja subset written for mlaserve (jinja/): it covers what DeepSeek's
// V2, V3 and R1 templates use and the common constructs of other chat templates. A template
// that uses anything else (macros, includes, an unknown filter or test, ...) fails when the
// ChatTemplate is built, with an error naming the construct; a template that fails while
// rendering (raise_exception, a None where a string was expected) fails the render. Never a
// silently different prompt.
//
//   ChatTemplate t = ChatTemplate::from_tokenizer(tokenizer);
//   std::string prompt = t.render(messages, {.add_generation_prompt = true});
//   std::vector<int32_t> ids = tokenizer.encode(prompt);  // the template already has BOS
//
// Messages are a JSON array of objects ({"role", "content", "tool_calls", ...}), exactly
// what the template indexes. Object keys keep their order with nlohmann::ordered_json (as
// Python dicts do; it matters for tojson and for iterating a dict); nlohmann::json sorts
// them. render() is const and thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace mlaserve::tokenizer {

namespace jinja {
struct Stmt;
}

class ChatTemplate {
 public:
  struct RenderOptions {
    bool add_generation_prompt = false;
    // More template variables; they override the defaults (bos_token, eos_token, ... from
    // the tokenizer, tools and documents = none). E.g. {"tools": [...]}.
    nlohmann::ordered_json context = nlohmann::ordered_json::object();
  };

  // Parses `source`. `context` gives variables every render sees (typically
  // Tokenizer::template_context()). Throws mlaserve::Error naming any unsupported construct.
  explicit ChatTemplate(std::string_view source, nlohmann::ordered_json context = nlohmann::ordered_json::object());

  // The tokenizer's chat_template with its special tokens as variables. Throws if the
  // tokenizer has no chat template.
  static ChatTemplate from_tokenizer(const Tokenizer& tokenizer);

  std::string render(const nlohmann::ordered_json& messages, const RenderOptions& options) const;
  std::string render(const nlohmann::ordered_json& messages) const { return render(messages, RenderOptions{}); }
  std::string render(const nlohmann::json& messages, const RenderOptions& options) const;

 private:
  std::shared_ptr<const std::vector<std::unique_ptr<jinja::Stmt>>> body_;
  nlohmann::ordered_json context_;
};

}  // namespace mlaserve::tokenizer
