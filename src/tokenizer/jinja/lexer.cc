#include "tokenizer/jinja/lexer.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>

#include "tokenizer/jinja/template_error.h"
#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace mlaserve::tokenizer::jinja {
namespace {

std::string normalize_newlines(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      out += '\n';
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else {
      out += s[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();  // keep_trailing_newline=False
  return out;
}

// Python's str.isspace for the code point at s[i] (s is valid UTF-8); sets `next` past it.
bool space_at(std::string_view s, size_t i, size_t& next) {
  next = i;
  return unicode::is_python_space(utf8::decode(s, next));
}

size_t skip_space(std::string_view s, size_t i) {
  size_t next = i;
  while (i < s.size() && space_at(s, i, next)) i = next;
  return i;
}

std::string_view rstrip(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t next = 0;
    if (!space_at(s, start, next)) break;
    end = start;
  }
  return s.substr(0, end);
}

bool all_space(std::string_view s) {
  size_t next = 0;
  for (size_t i = 0; i < s.size(); i = next) {
    if (!space_at(s, i, next)) return false;
  }
  return !s.empty();
}

int count_newlines(std::string_view s) {
  int n = 0;
  for (const char c : s) n += c == '\n';
  return n;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's unicode-escape decoding of a string literal's body.
std::string unescape(std::string_view body, int line) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '\\' || i + 1 == body.size()) {
      out += body[i];
      continue;
    }
    const char e = body[++i];
    switch (e) {
      case '\n': break;  // line continuation
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'x':
      case 'u':
      case 'U': {
        const size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (size_t k = 1; k <= digits; ++k) {
          const int h = i + k < body.size() ? hex_value(body[i + k]) : -1;
          if (h < 0) throw TemplateError(fmt::format("truncated \\{} escape in a string literal", e), line);
          cp = cp * 16 + static_cast<uint32_t>(h);
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
          throw TemplateError(fmt::format("\\{} escape out of range in a string literal", e), line);
        }
        utf8::append(out, cp);
        i += digits;
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          uint32_t cp = 0;
          size_t k = 0;
          for (; k < 3 && i + k < body.size() && body[i + k] >= '0' && body[i + k] <= '7'; ++k) cp = cp * 8 + (body[i + k] - '0');
          utf8::append(out, cp);
          i += k - 1;
        } else if (static_cast<unsigned char>(e) >= 0x80 || e == 'N') {
          throw TemplateError(fmt::format("unsupported escape \\{} in a string literal", e == 'N' ? "N{...}" : "<non-ASCII>"), line);
        } else {
          out += '\\';  // unknown escapes stay as they are
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(normalize_newlines(source)) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      const size_t tag = find_tag(pos_);
      std::string_view text = std::string_view(src_).substr(pos_, (tag == std::string::npos ? src_.size() : tag) - pos_);
      if (tag == std::string::npos) {
        emit_text(text);
        break;
      }
      const char kind = src_[tag + 1];
      const char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+') ? src_[tag + 2] : '\0';
      const int text_lines = count_newlines(text);
      if (sign == '-') {
        text = rstrip(text);
      } else if (sign != '+' && kind != '{') {  // lstrip_blocks
        const size_t line_start = text.rfind('\n') == std::string_view::npos ? 0 : text.rfind('\n') + 1;
        if ((line_start > 0 || line_starting_) && all_space(text.substr(line_start))) text = text.substr(0, line_start);
      }
      emit_text(text);
      line_ += text_lines;
      pos_ = tag + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        comment();
      } else if (kind == '%' && raw_begin()) {
        raw();
      } else {
        tag_body(kind == '{');
      }
    }
    tokens_.push_back(Token{TokenKind::kEnd, "", 0, 0, line_});
    return std::move(tokens_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos && i + 1 < src_.size(); i = src_.find('{', i + 1)) {
      if (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#') return i;
    }
    return std::string::npos;
  }

  void emit_text(std::string_view text) {
    if (!text.empty()) tokens_.push_back(Token{TokenKind::kText, std::string(text), 0, 0, line_});
  }

  // Matches a block end (+%}, -%} with following whitespace, or %} with trim_blocks' \n)
  // at pos_; on success moves past it.
  bool block_end(std::string_view close) {
    const std::string_view rest = std::string_view(src_).substr(pos_);
    const bool variable = close == "}}";  // }} has no + form and no trim_blocks
    size_t end = 0;
    if (!variable && rest.size() > close.size() && rest[0] == '+' && rest.substr(1).starts_with(close)) {
      end = pos_ + 1 + close.size();
    } else if (rest.size() > close.size() && rest[0] == '-' && rest.substr(1).starts_with(close)) {
      end = skip_space(src_, pos_ + 1 + close.size());
    } else if (rest.starts_with(close)) {
      end = pos_ + close.size();
      if (!variable && end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
    } else {
      return false;
    }
    const std::string_view matched = std::string_view(src_).substr(pos_, end - pos_);
    line_ += count_newlines(matched);
    line_starting_ = !matched.empty() && matched.back() == '\n';
    pos_ = end;
    return true;
  }

  void comment() {
    const int start_line = line_;
    while (pos_ < src_.size()) {
      if (block_end("#}")) return;
      line_ += src_[pos_] == '\n';
      ++pos_;
    }
    throw TemplateError("missing end of comment tag", start_line);
  }

  // {% raw %} (with optional - and +): true and past it, or false and nothing consumed.
  bool raw_begin() {
    size_t p = skip_space(src_, pos_);
    if (std::string_view(src_).substr(p, 3) != "raw") return false;
    p = skip_space(src_, p + 3);
    const size_t saved = pos_;
    pos_ = p;
    if (std::string_view(src_).substr(p).starts_with("-%}")) {
      pos_ = skip_space(src_, p + 3);
    } else if (std::string_view(src_).substr(p).starts_with("%}")) {
      pos_ = p + 2;
    } else {
      pos_ = saved;
      return false;
    }
    line_ += count_newlines(std::string_view(src_).substr(saved, pos_ - saved));
    line_starting_ = src_[pos_ - 1] == '\n';
    return true;
  }

  void raw() {
    const int start_line = line_;
    for (size_t tag = find_tag(pos_); tag != std::string::npos; tag = find_tag(tag + 1)) {
      if (src_[tag + 1] != '%') continue;
      const char sign = src_[tag + 2] == '-' || src_[tag + 2] == '+' ? src_[tag + 2] : '\0';
      size_t p = skip_space(src_, tag + 2 + (sign ? 1 : 0));
      if (std::string_view(src_).substr(p, 6) != "endraw") continue;
      const size_t after_name = skip_space(src_, p + 6);
      std::string_view data = std::string_view(src_).substr(pos_, tag - pos_);
      const int data_lines = count_newlines(data);
      if (sign == '-') {
        data = rstrip(data);
      } else if (sign != '+') {
        const size_t line_start = data.rfind('\n') == std::string_view::npos ? 0 : data.rfind('\n') + 1;
        if ((line_start > 0 || line_starting_) && all_space(data.substr(line_start))) data = data.substr(0, line_start);
      }
      emit_text(data);
      line_ += data_lines;
      pos_ = after_name;
      if (!block_end("%}")) throw TemplateError("expected %} after endraw", line_);
      return;
    }
    throw TemplateError("missing end of raw directive", start_line);
  }

  void tag_body(bool variable) {
    tokens_.push_back(Token{variable ? TokenKind::kVariableBegin : TokenKind::kBlockBegin, "", 0, 0, line_});
    const std::string_view close = variable ? "}}" : "%}";
    std::vector<char> brackets;
    const int start_line = line_;
    while (true) {
      const size_t after_space = skip_space(src_, pos_);
      line_ += count_newlines(std::string_view(src_).substr(pos_, after_space - pos_));
      pos_ = after_space;
      if (pos_ >= src_.size()) throw TemplateError(fmt::format("unexpected end of template, expected '{}'", close), start_line);
      if (brackets.empty() && block_end(close)) {
        tokens_.push_back(Token{variable ? TokenKind::kVariableEnd : TokenKind::kBlockEnd, "", 0, 0, line_});
        return;
      }
      expression_token(brackets);
    }
  }

  void expression_token(std::vector<char>& brackets) {
    const char c = src_[pos_];
    if (std::isdigit(static_cast<unsigned char>(c))) {
      number();
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t end = pos_;
      while (end < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[end])) || src_[end] == '_')) ++end;
      tokens_.push_back(Token{TokenKind::kName, src_.substr(pos_, end - pos_), 0, 0, line_});
      pos_ = end;
    } else if (c == '\'' || c == '"') {
      string_literal(c);
    } else {
      operator_token(brackets);
    }
  }

  void number() {
    auto digits = [&](size_t p) {  // digits with single underscores between them
      while (p < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[p])) ||
                                 (src_[p] == '_' && p + 1 < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p + 1]))))) {
        ++p;
      }
      return p;
    };
    size_t end = digits(pos_);
    bool is_float = false;
    const bool after_dot = pos_ > 0 && src_[pos_ - 1] == '.';  // float_re's (?<!\.)
    if (!after_dot && end + 1 < src_.size() && src_[end] == '.' && std::isdigit(static_cast<unsigned char>(src_[end + 1]))) {
      end = digits(end + 1);
      is_float = true;
    }
    if (!after_dot && end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
      size_t p = end + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) {
        end = digits(p);
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = pos_; i < end; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    Token t{is_float ? TokenKind::kFloat : TokenKind::kInteger, text, 0, 0, line_};
    if (is_float) {
      std::from_chars(text.data(), text.data() + text.size(), t.number);
    } else {
      const auto res = std::from_chars(text.data(), text.data() + text.size(), t.integer);
      if (res.ec != std::errc()) throw TemplateError(fmt::format("integer literal {} is out of range", text), line_);
    }
    tokens_.push_back(std::move(t));
    pos_ = end;
  }

  void string_literal(char quote) {
    const int start_line = line_;
    size_t p = pos_ + 1;
    while (p < src_.size() && src_[p] != quote) p += src_[p] == '\\' ? 2 : 1;
    if (p >= src_.size()) throw TemplateError("unterminated string literal", start_line);
    const std::string_view body = std::string_view(src_).substr(pos_ + 1, p - pos_ - 1);
    tokens_.push_back(Token{TokenKind::kString, unescape(body, start_line), 0, 0, start_line});
    line_ += count_newlines(body);
    pos_ = p + 1;
  }

  void operator_token(std::vector<char>& brackets) {
    static constexpr std::string_view kTwo[] = {"**", "//", "==", "!=", ">=", "<="};
    static constexpr std::string_view kOne = "+-/*%~[](){}><=.:|,;";
    std::string op;
    for (const auto two : kTwo) {
      if (std::string_view(src_).substr(pos_).starts_with(two)) op = two;
    }
    if (op.empty() && kOne.find(src_[pos_]) != std::string_view::npos) op = src_.substr(pos_, 1);
    if (op.empty()) {
      const size_t start = pos_;
      size_t next = pos_;
      utf8::decode(src_, next);
      throw TemplateError(fmt::format("unexpected character '{}'", src_.substr(start, next - start)), line_);
    }
    if (op == "(" || op == "[" || op == "{") brackets.push_back(op[0]);
    if (op == ")" || op == "]" || op == "}") {
      const char open = op == ")" ? '(' : op == "]" ? '[' : '{';
      if (brackets.empty() || brackets.back() != open) throw TemplateError(fmt::format("unexpected '{}'", op), line_);
      brackets.pop_back();
    }
    tokens_.push_back(Token{TokenKind::kOperator, op, 0, 0, line_});
    pos_ += op.size();
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> lex(std::string_view source) {
  // Every scan below decodes code points and relies on it (a stray byte once stalled one).
  const size_t valid = utf8::valid_prefix_length(source);
  if (valid != source.size()) {
    throw TemplateError(fmt::format("the template is not valid UTF-8 (byte {} of {})", valid, source.size()),
                        1 + static_cast<int>(std::count(source.begin(), source.begin() + static_cast<std::ptrdiff_t>(valid), '\n')));
  }
  return Lexer(source).run();
}

}  // namespace mlaserve::tokenizer::jinja
