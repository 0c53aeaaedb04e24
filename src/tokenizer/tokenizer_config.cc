#include "tokenizer/tokenizer_config.h"

#include "tokenizer/json_fields.h"

namespace mlaserve::tokenizer {
namespace {

using nlohmann::json;

const JsonFields kFields("tokenizer_config.json");

std::optional<std::string> special_token(const json& root, const char* key) {
  const json* v = kFields.optional_member(root, "", key);
  if (v == nullptr) return std::nullopt;
  if (v->is_object()) return kFields.string(kFields.member(*v, key, "content"), JsonFields::join(key, "content"));
  return kFields.string(*v, key);
}

std::optional<std::string> chat_template(const json& root) {
  const json* v = kFields.optional_member(root, "", "chat_template");
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  kFields.expect_array(*v, "chat_template");
  for (size_t i = 0; i < v->size(); ++i) {
    const std::string path = JsonFields::index("chat_template", i);
    if (kFields.string(kFields.member((*v)[i], path, "name"), JsonFields::join(path, "name")) == "default") {
      return kFields.string(kFields.member((*v)[i], path, "template"), JsonFields::join(path, "template"));
    }
  }
  kFields.fail("chat_template", "a list of templates without one named \"default\"");
}

}  // namespace

TokenizerConfig parse_tokenizer_config(std::string_view text) {
  const json root = kFields.parse(text);
  kFields.expect_object(root, "");
  TokenizerConfig config;
  if (const json* c = kFields.optional_member(root, "", "tokenizer_class")) {
    config.tokenizer_class = kFields.string(*c, "tokenizer_class");
  }
  const bool llama = config.tokenizer_class == "LlamaTokenizerFast" || config.tokenizer_class == "LlamaTokenizer";
  config.add_bos_token = kFields.boolean(root, "", "add_bos_token", llama);
  config.add_eos_token = kFields.boolean(root, "", "add_eos_token", false);
  config.bos_token = special_token(root, "bos_token");
  config.eos_token = special_token(root, "eos_token");
  config.pad_token = special_token(root, "pad_token");
  config.unk_token = special_token(root, "unk_token");
  config.chat_template = chat_template(root);
  return config;
}

}  // namespace mlaserve::tokenizer
