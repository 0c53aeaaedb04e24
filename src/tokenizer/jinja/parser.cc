#include "tokenizer/jinja/parser.h"

#include <algorithm>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/lexer.h"
#include "tokenizer/jinja/template_error.h"

namespace mlaserve::tokenizer::jinja {
namespace {

// Tags jinja2 has that this engine deliberately does not implement.
constexpr std::string_view kUnsupportedTags[] = {"macro", "call", "filter", "include", "import", "from", "extends",
                                                 "block", "with", "autoescape", "do", "trans", "pluralize", "generation"};

ExprPtr make(ExprKind kind, int line) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = line;
  return e;
}

// A node with all its operands: its height set, and bounded.
ExprPtr finished(ExprPtr e) {
  int below = 0;
  for (const ExprPtr& operand : e->operands) {
    if (operand) below = std::max(below, operand->height);
  }
  for (const auto& [key, value] : e->kwargs) below = std::max(below, value->height);
  e->height = below + 1;
  if (e->height > kMaxNesting) {
    throw TemplateError(fmt::format("expression nested deeper than {} levels", kMaxNesting), e->line);
  }
  return e;
}

ExprPtr make(ExprKind kind, int line, ExprPtr a, ExprPtr b = nullptr) {
  auto e = make(kind, line);
  e->operands.push_back(std::move(a));
  if (b) e->operands.push_back(std::move(b));
  return finished(std::move(e));
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Body parse_all() {
    std::string end;
    Body body = parse_body({}, end);
    return body;
  }

 private:
  // ---------------------------------------------------------------- token helpers
  const Token& cur() const { return tokens_[pos_]; }
  const Token& peek(size_t ahead = 1) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  bool is_op(std::string_view op) const { return cur().kind == TokenKind::kOperator && cur().text == op; }
  bool is_name(std::string_view name) const { return cur().kind == TokenKind::kName && cur().text == name; }
  const Token& next() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }

  [[noreturn]] void error(const std::string& message) const { throw TemplateError(message, cur().line); }

  // Held by each parse function that recurses (bodies in statements, expressions in
  // parentheses, lists, calls and subscripts, chains of not and unary minus).
  class Nested {
   public:
    explicit Nested(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxNesting) p_.error(fmt::format("statements or expressions nested too deeply (over {} levels of parsing)", kMaxNesting));
    }
    ~Nested() { --p_.depth_; }
    Nested(const Nested&) = delete;
    Nested& operator=(const Nested&) = delete;

   private:
    Parser& p_;
  };

  std::string describe(const Token& t) const {
    switch (t.kind) {
      case TokenKind::kText: return "template text";
      case TokenKind::kVariableBegin: return "'{{'";
      case TokenKind::kVariableEnd: return "'}}'";
      case TokenKind::kBlockBegin: return "'{%'";
      case TokenKind::kBlockEnd: return "end of statement block";
      case TokenKind::kEnd: return "end of template";
      case TokenKind::kString: return "string";
      case TokenKind::kInteger: return "integer";
      case TokenKind::kFloat: return "float";
      default: return "'" + t.text + "'";
    }
  }

  void expect_op(std::string_view op) {
    if (!is_op(op)) error(fmt::format("expected '{}', got {}", op, describe(cur())));
    next();
  }
  std::string expect_name() {
    if (cur().kind != TokenKind::kName) error(fmt::format("expected a name, got {}", describe(cur())));
    return next().text;
  }
  void expect_block_end() {
    if (cur().kind != TokenKind::kBlockEnd) error(fmt::format("expected end of statement block, got {}", describe(cur())));
    next();
  }

  // ---------------------------------------------------------------- statements
  // Parses until a {% tag %} named in `ends` (left with that tag's name consumed, in
  // `end_found`) or the end of the template (only when `ends` is empty).
  Body parse_body(std::initializer_list<std::string_view> ends, std::string& end_found) {
    const Nested nested(*this);
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.kind == TokenKind::kEnd) {
        if (ends.size() == 0) return body;
        error(fmt::format("unexpected end of template, expected '{}'", *ends.begin()));
      }
      if (t.kind == TokenKind::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kText;
        s->line = t.line;
        s->text = next().text;
        body.push_back(std::move(s));
      } else if (t.kind == TokenKind::kVariableBegin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->line = cur().line;
        s->expr = parse_tuple(true);
        if (cur().kind != TokenKind::kVariableEnd) error(fmt::format("expected '}}}}', got {}", describe(cur())));
        next();
        body.push_back(std::move(s));
      } else if (t.kind == TokenKind::kBlockBegin) {
        next();
        const std::string tag = cur().kind == TokenKind::kName ? cur().text : "";
        if (std::find(ends.begin(), ends.end(), tag) != ends.end()) {
          next();
          end_found = tag;
          return body;
        }
        body.push_back(parse_statement());
      } else {
        error(fmt::format("unexpected {}", describe(t)));
      }
    }
  }

  std::unique_ptr<Stmt> parse_statement() {
    const int line = cur().line;
    const std::string tag = expect_name();
    auto s = std::make_unique<Stmt>();
    s->line = line;
    if (tag == "if") {
      s->kind = StmtKind::kIf;
      parse_if(*s);
    } else if (tag == "for") {
      s->kind = StmtKind::kFor;
      parse_for(*s);
    } else if (tag == "set") {
      parse_set(*s);
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) throw TemplateError(fmt::format("'{}' outside of a loop", tag), line);
      s->kind = tag == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      expect_block_end();
    } else if (std::find(std::begin(kUnsupportedTags), std::end(kUnsupportedTags), tag) != std::end(kUnsupportedTags)) {
      throw TemplateError(fmt::format("unsupported template tag '{{% {} %}}'", tag), line);
    } else {
      throw TemplateError(fmt::format("unknown template tag '{}'", tag), line);
    }
    return s;
  }

  void parse_if(Stmt& s) {
    std::string end;
    ExprPtr cond = parse_tuple(false);
    expect_block_end();
    while (true) {
      Body body = parse_body({"elif", "else", "endif"}, end);
      s.branches.emplace_back(std::move(cond), std::move(body));
      if (end == "elif") {
        cond = parse_tuple(false);
        expect_block_end();
        continue;
      }
      if (end == "else") {
        expect_block_end();
        s.else_body = parse_body({"endif"}, end);
      }
      expect_block_end();
      return;
    }
  }

  void parse_for(Stmt& s) {
    s.targets = parse_names({"in"});
    if (!is_name("in")) error(fmt::format("expected 'in', got {}", describe(cur())));
    next();
    s.expr = parse_tuple(false, {"recursive", "if"});
    if (is_name("if")) {
      next();
      s.filter = parse_expression();
    }
    if (is_name("recursive")) error("unsupported: recursive for loops");
    expect_block_end();
    std::string end;
    ++loop_depth_;
    s.body = parse_body({"endfor", "else"}, end);
    --loop_depth_;
    if (end == "else") {
      expect_block_end();
      s.else_body = parse_body({"endfor"}, end);
    }
    expect_block_end();
  }

  void parse_set(Stmt& s) {
    if (cur().kind == TokenKind::kName && peek().kind == TokenKind::kOperator && peek().text == ".") {
      s.targets.push_back(next().text);
      next();
      s.attribute = expect_name();
    } else {
      s.targets = parse_names({});
    }
    if (is_op("=")) {
      next();
      s.kind = StmtKind::kSet;
      s.expr = parse_tuple(true);
      expect_block_end();
      return;
    }
    if (!s.attribute.empty() || s.targets.size() != 1) error("a block set needs a single name");
    if (is_op("|")) error("unsupported: filters on a block set");
    expect_block_end();
    s.kind = StmtKind::kSetBlock;
    std::string end;
    s.body = parse_body({"endset"}, end);
    expect_block_end();
  }

  // Assignment targets: a name, or names separated by commas (optionally in parentheses).
  std::vector<std::string> parse_names(std::initializer_list<std::string_view> stop) {
    std::vector<std::string> names;
    const bool parens = is_op("(");
    if (parens) next();
    while (true) {
      names.push_back(expect_name());
      if (!is_op(",")) break;
      next();
      if (cur().kind == TokenKind::kName && std::find(stop.begin(), stop.end(), cur().text) != stop.end()) break;
    }
    if (parens) expect_op(")");
    for (const auto& n : names) {
      if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None") {
        error(fmt::format("cannot assign to '{}'", n));
      }
    }
    return names;
  }

  // ---------------------------------------------------------------- expressions
  bool at_tuple_end(std::initializer_list<std::string_view> extra) const {
    const TokenKind k = cur().kind;
    if (k == TokenKind::kVariableEnd || k == TokenKind::kBlockEnd || k == TokenKind::kEnd || is_op(")")) return true;
    return cur().kind == TokenKind::kName && std::find(extra.begin(), extra.end(), cur().text) != extra.end();
  }

  ExprPtr parse_tuple(bool with_condition, std::initializer_list<std::string_view> extra_end = {},
                      bool explicit_parentheses = false) {
    const int line = cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (at_tuple_end(extra_end)) break;
      items.push_back(with_condition ? parse_expression() : parse_or());
      if (!is_op(",")) break;
      is_tuple = true;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) error(fmt::format("expected an expression, got {}", describe(cur())));
    }
    auto t = make(ExprKind::kTuple, line);
    t->operands = std::move(items);
    return finished(std::move(t));
  }

  ExprPtr parse_expression() {
    const Nested nested(*this);
    ExprPtr e = parse_or();
    while (is_name("if")) {
      const int line = cur().line;
      next();
      ExprPtr cond = parse_or();
      ExprPtr otherwise;
      if (is_name("else")) {
        next();
        otherwise = parse_expression();
      }
      auto c = make(ExprKind::kCondition, line);
      c->operands.push_back(std::move(e));
      c->operands.push_back(std::move(cond));
      c->operands.push_back(std::move(otherwise));
      e = finished(std::move(c));
    }
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      const int line = next().line;
      e = make(ExprKind::kOr, line, std::move(e), parse_and());
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      const int line = next().line;
      e = make(ExprKind::kAnd, line, std::move(e), parse_not());
    }
    return e;
  }

  ExprPtr parse_not() {
    const Nested nested(*this);
    if (is_name("not")) {
      const int line = next().line;
      return make(ExprKind::kNot, line, parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = cur().line;
    ExprPtr first = parse_math1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> rest;
    while (true) {
      if (cur().kind == TokenKind::kOperator &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" || cur().text == ">" ||
           cur().text == ">=")) {
        ops.push_back(next().text);
      } else if (is_name("in")) {
        next();
        ops.emplace_back("in");
      } else if (is_name("not") && peek().kind == TokenKind::kName && peek().text == "in") {
        next();
        next();
        ops.emplace_back("notin");
      } else {
        break;
      }
      rest.push_back(parse_math1());
    }
    if (ops.empty()) return first;
    auto c = make(ExprKind::kCompare, line);
    c->operands.push_back(std::move(first));
    for (auto& r : rest) c->operands.push_back(std::move(r));
    c->ops = std::move(ops);
    return finished(std::move(c));
  }

  ExprPtr binary_loop(ExprPtr (Parser::*operand)(), std::initializer_list<std::string_view> operators) {
    ExprPtr e = (this->*operand)();
    while (cur().kind == TokenKind::kOperator &&
           std::find(operators.begin(), operators.end(), cur().text) != operators.end()) {
      const Token& op = next();
      auto b = make(ExprKind::kBinary, op.line, std::move(e), (this->*operand)());
      b->name = op.text;
      e = std::move(b);
    }
    return e;
  }

  ExprPtr parse_math1() { return binary_loop(&Parser::parse_concat, {"+", "-"}); }
  ExprPtr parse_concat() { return binary_loop(&Parser::parse_math2, {"~"}); }
  ExprPtr parse_math2() { return binary_loop(&Parser::parse_pow, {"*", "/", "//", "%"}); }
  ExprPtr parse_pow() { return binary_loop(&Parser::parse_unary_filtered, {"**"}); }
  ExprPtr parse_unary_filtered() { return parse_unary(true); }

  ExprPtr parse_unary(bool with_filter) {
    const Nested nested(*this);
    const int line = cur().line;
    ExprPtr e;
    if (is_op("-")) {
      next();
      e = make(ExprKind::kNegate, line, parse_unary(false));
    } else if (is_op("+")) {
      next();
      e = make(ExprKind::kPlus, line, parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr literal(Value v, int line) {
    auto e = make(ExprKind::kLiteral, line);
    e->literal = std::move(v);
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    const int line = t.line;
    switch (t.kind) {
      case TokenKind::kName: {
        const std::string name = next().text;
        if (name == "true" || name == "True") return literal(true, line);
        if (name == "false" || name == "False") return literal(false, line);
        if (name == "none" || name == "None") return literal(None{}, line);
        auto e = make(ExprKind::kName, line);
        e->name = name;
        return e;
      }
      case TokenKind::kString: {
        std::string s = next().text;
        while (cur().kind == TokenKind::kString) s += next().text;  // adjacent literals concatenate
        return literal(std::move(s), line);
      }
      case TokenKind::kInteger:
        return literal(next().integer, line);
      case TokenKind::kFloat:
        return literal(next().number, line);
      case TokenKind::kOperator:
        if (t.text == "(") {
          next();
          ExprPtr e = parse_tuple(true, {}, true);
          expect_op(")");
          return e;
        }
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default:
        break;
    }
    error(fmt::format("unexpected {}", describe(t)));
  }

  ExprPtr parse_list() {
    auto e = make(ExprKind::kList, next().line);
    while (!is_op("]")) {
      if (!e->operands.empty()) expect_op(",");
      if (is_op("]")) break;
      e->operands.push_back(parse_expression());
    }
    expect_op("]");
    return finished(std::move(e));
  }

  ExprPtr parse_dict() {
    auto e = make(ExprKind::kDict, next().line);
    while (!is_op("}")) {
      if (!e->operands.empty()) expect_op(",");
      if (is_op("}")) break;
      e->operands.push_back(parse_expression());
      expect_op(":");
      e->operands.push_back(parse_expression());
    }
    expect_op("}");
    return finished(std::move(e));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filter(std::move(e));
      } else if (is_name("is")) {
        e = parse_test(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    const Token& t = next();
    const int line = t.line;
    if (t.text == ".") {
      if (cur().kind == TokenKind::kName) {
        auto e = make(ExprKind::kGetAttr, line, std::move(obj));
        e->name = next().text;
        return e;
      }
      if (cur().kind == TokenKind::kInteger) return make(ExprKind::kGetItem, line, std::move(obj), literal(next().integer, line));
      error(fmt::format("expected a name or number after '.', got {}", describe(cur())));
    }
    // '[': an index, or a slice a:b:c
    ExprPtr parts[3];
    bool slice = false;
    if (!is_op(":")) parts[0] = parse_expression();
    if (is_op(":")) {
      slice = true;
      next();
      if (!is_op("]") && !is_op(":")) parts[1] = parse_expression();
      if (is_op(":")) {
        next();
        if (!is_op("]")) parts[2] = parse_expression();
      }
    }
    if (is_op(",")) error("unsupported: tuple subscripts");
    expect_op("]");
    if (!slice) return make(ExprKind::kGetItem, line, std::move(obj), std::move(parts[0]));
    auto e = make(ExprKind::kSlice, line, std::move(obj));
    for (auto& p : parts) e->operands.push_back(std::move(p));
    return finished(std::move(e));
  }

  // Parses "(args)" into e->operands (after whatever is already there) and e->kwargs.
  void parse_call_args(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) error("unsupported: *args and **kwargs in calls");
      if (cur().kind == TokenKind::kName && peek().kind == TokenKind::kOperator && peek().text == "=") {
        std::string key = next().text;
        next();
        e.kwargs.emplace_back(std::move(key), parse_expression());
      } else {
        if (!e.kwargs.empty()) error("positional argument follows keyword argument");
        e.operands.push_back(parse_expression());
      }
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = make(ExprKind::kCall, cur().line, std::move(callee));
    parse_call_args(*e);
    return finished(std::move(e));
  }

  ExprPtr parse_filter(ExprPtr input) {
    next();  // '|'
    const int line = cur().line;
    std::string name = expect_name();
    if (!has_filter(name)) throw TemplateError(fmt::format("unsupported filter '{}'", name), line);
    auto e = make(ExprKind::kFilter, line, std::move(input));
    e->name = std::move(name);
    if (is_op("(")) parse_call_args(*e);
    return finished(std::move(e));
  }

  ExprPtr parse_test(ExprPtr input) {
    next();  // 'is'
    const int line = cur().line;
    bool negated = false;
    if (is_name("not")) {
      next();
      negated = true;
    }
    std::string name = expect_name();
    if (!has_test(name)) throw TemplateError(fmt::format("unsupported test '{}'", name), line);
    auto e = make(ExprKind::kTest, line, std::move(input));
    e->name = std::move(name);
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((cur().kind == TokenKind::kName || cur().kind == TokenKind::kString || cur().kind == TokenKind::kInteger ||
                cur().kind == TokenKind::kFloat || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) error("you cannot chain multiple tests with is");
      e->operands.push_back(parse_postfix(parse_primary()));
    }
    e = finished(std::move(e));
    return negated ? make(ExprKind::kNot, line, std::move(e)) : std::move(e);
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int loop_depth_ = 0;
  int depth_ = 0;  // parse functions open (Nested)
};

}  // namespace

Body parse_template(std::string_view source) { return Parser(lex(source)).parse_all(); }

}  // namespace mlaserve::tokenizer::jinja
