#include "tokenizer/chat_template.h"

#include "core/error.h"
#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/parser.h"
#include "tokenizer/jinja/template_error.h"

namespace mlaserve::tokenizer {

ChatTemplate::ChatTemplate(std::string_view source, nlohmann::ordered_json context)
    : body_(std::make_shared<const jinja::Body>(jinja::parse_template(source))), context_(std::move(context)) {
  MLA_CHECK(context_.is_object(), "chat template context must be a JSON object");
}

ChatTemplate ChatTemplate::from_tokenizer(const Tokenizer& tokenizer) {
  const auto& source = tokenizer.config().chat_template;
  if (!source) MLA_FAIL("the tokenizer has no chat_template (tokenizer_config.json or chat_template.jinja)");
  return ChatTemplate(*source, tokenizer.template_context());
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const RenderOptions& options) const {
  if (!messages.is_array()) throw jinja::TemplateError("messages must be a JSON array");
  if (!options.context.is_object()) throw jinja::TemplateError("the render context must be a JSON object");
  // Later entries shadow earlier ones: what transformers passes, then the caller's variables.
  jinja::Context context;
  context.emplace_back("messages", jinja::Value::from_json(messages));
  context.emplace_back("add_generation_prompt", jinja::Value(options.add_generation_prompt));
  context.emplace_back("tools", jinja::Value(jinja::None{}));
  context.emplace_back("documents", jinja::Value(jinja::None{}));
  for (const auto& [k, v] : context_.items()) context.emplace_back(k, jinja::Value::from_json(v));
  for (const auto& [k, v] : options.context.items()) context.emplace_back(k, jinja::Value::from_json(v));
  std::reverse(context.begin(), context.end());  // lookup takes the first match
  return jinja::render(*body_, context);
}

std::string ChatTemplate::render(const nlohmann::json& messages, const RenderOptions& options) const {
  return render(nlohmann::ordered_json::parse(messages.dump()), options);
}

}  // namespace mlaserve::tokenizer
