// tokenizer_config.json: what transformers adds on top of tokenizer.json. The parts that
// change what a prompt becomes are read here:
//   add_bos_token / add_eos_token   whether encode(..., add_special_tokens=true) puts BOS
//       before and EOS after the ids. LlamaTokenizer[Fast] (DeepSeek's class) defaults to
//       BOS on, EOS off and replaces tokenizer.json's post-processor with exactly this;
//       other classes default to neither.
//   bos_token, eos_token, pad_token, unk_token   a string, an {"content": ...} object or null;
//       also what the chat template sees as bos_token etc.
//   chat_template   a string, or a list of {"name", "template"} of which "default" is used;
//       a chat_template.jinja file beside it (newer exports) is used when this is absent.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mlaserve::tokenizer {

struct TokenizerConfig {
  std::string tokenizer_class;
  bool add_bos_token = false;
  bool add_eos_token = false;
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> pad_token;
  std::optional<std::string> unk_token;
  std::optional<std::string> chat_template;
};

// Parses the text of a tokenizer_config.json. Throws mlaserve::Error naming the field.
TokenizerConfig parse_tokenizer_config(std::string_view text);

}  // namespace mlaserve::tokenizer
