// Lexer of the Jinja subset: template text in, a flat token stream out, with jinja2's
// whitespace handling already applied, configured as transformers configures it for chat
// templates (trim_blocks and lstrip_blocks on, keep_trailing_newline off):
//   - newlines (\r\n, \r) become \n and one trailing newline is dropped;
//   - {%- / {{- / {#- strip all whitespace before the tag, -%} / -}} / -#} all after it;
//   - trim_blocks: one \n right after %} or #} is dropped (not after +%});
//   - lstrip_blocks: spaces and tabs between a line start and {% or {# are dropped (not
//     for {%+ or {{);
//   - {% raw %}...{% endraw %} becomes one text token; comments disappear;
//   - inside a tag, }} and %} end it only when brackets are balanced ({'a': {'b': 1}}).
// String literals are unescaped as Python's unicode-escape does (\n, \t, \xhh, \uhhhh, ...).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mlaserve::tokenizer::jinja {

enum class TokenKind {
  kText,
  kVariableBegin,  // {{
  kVariableEnd,    // }}
  kBlockBegin,     // {%
  kBlockEnd,       // %}
  kName,
  kString,
  kInteger,
  kFloat,
  kOperator,
  kEnd,
};

struct Token {
  TokenKind kind;
  std::string text;  // text, name, unescaped string value, or operator
  int64_t integer = 0;
  double number = 0;
  int line = 1;
};

// Throws TemplateError for a source that is not valid UTF-8, an unterminated tag, comment,
// string or raw block, or an unexpected character.
std::vector<Token> lex(std::string_view source);

}  // namespace mlaserve::tokenizer::jinja
