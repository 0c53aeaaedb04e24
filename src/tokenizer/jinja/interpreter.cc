#include "tokenizer/jinja/interpreter.h"

#include <cmath>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/template_error.h"

namespace mlaserve::tokenizer::jinja {
namespace {

[[noreturn]] void type_error(const char* op, const Value& a, const Value& b) {
  fail("TypeError: unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a), type_name(b));
}

[[noreturn]] void overflow() { fail("OverflowError: integer result does not fit in 64 bits"); }

int64_t add(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) overflow();
  return r;
}
int64_t sub(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_sub_overflow(a, b, &r)) overflow();
  return r;
}
int64_t mul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) overflow();
  return r;
}

// Python's s * n for a string or list: fails before building one past the size limits.
Value repeat(const Value& seq, int64_t times) {
  const size_t unit = seq.is_string() ? seq.as_string().size() : seq.as_sequence().items.size();
  const size_t limit = seq.is_string() ? kMaxStringBytes : kMaxItems;
  if (times > 0 && unit > 0 && static_cast<uint64_t>(times) > limit / unit) {
    fail("unsupported: a {} repeated past {} {}", seq.is_string() ? "string" : "list", limit,
         seq.is_string() ? "bytes" : "items");
  }
  if (seq.is_string()) {
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += seq.as_string();
    return out;
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), seq.as_sequence().items.begin(), seq.as_sequence().items.end());
  return Value::list(std::move(out), seq.as_sequence().kind);
}

bool concatenable(const Value& v) {
  return v.is_sequence() && (v.as_sequence().kind == SeqKind::kList || v.as_sequence().kind == SeqKind::kTuple);
}

// Python's float divmod: returns {floor quotient, remainder}.
std::pair<double, double> float_divmod(double x, double y) {
  if (y == 0.0) fail("ZeroDivisionError: float division by zero");
  double mod = std::fmod(x, y);
  double div = (x - mod) / y;
  if (mod != 0.0) {
    if ((y < 0) != (mod < 0)) {
      mod += y;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, y);
  }
  double floor_div = 0.0;
  if (div != 0.0) {
    floor_div = std::floor(div);
    if (div - floor_div > 0.5) floor_div += 1.0;
  } else {
    floor_div = std::copysign(0.0, x / y);
  }
  return {floor_div, mod};
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return to_str(a) + to_str(b);
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  const bool ints = (a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool());
  const bool numbers = a.is_number() && b.is_number();
  if (op == "+") {
    if (ints) return add(a.as_integer(), b.as_integer());
    if (numbers) return a.as_double() + b.as_double();
    if (a.is_string() && b.is_string()) return a.as_string() + b.as_string();
    if (concatenable(a) && concatenable(b) && a.as_sequence().kind == b.as_sequence().kind) {
      std::vector<Value> items = a.as_sequence().items;
      items.insert(items.end(), b.as_sequence().items.begin(), b.as_sequence().items.end());
      return Value::list(std::move(items), a.as_sequence().kind);
    }
    if (a.is_string() || b.is_string()) {
      fail("TypeError: can only concatenate str (not \"{}\") to str", type_name(a.is_string() ? b : a));
    }
    type_error("+", a, b);
  }
  if (op == "*") {
    if (ints) return mul(a.as_integer(), b.as_integer());
    if (numbers) return a.as_double() * b.as_double();
    if ((a.is_string() || concatenable(a)) && (b.is_int() || b.is_bool())) return repeat(a, b.as_integer());
    if ((b.is_string() || concatenable(b)) && (a.is_int() || a.is_bool())) return repeat(b, a.as_integer());
    type_error("*", a, b);
  }
  if (op == "%" && a.is_string()) fail("unsupported: printf-style string formatting with %");
  if (!numbers) type_error(op.c_str(), a, b);
  if (op == "-") {
    if (ints) return sub(a.as_integer(), b.as_integer());
    return a.as_double() - b.as_double();
  }
  if (op == "/") {
    if (b.as_double() == 0.0) fail("ZeroDivisionError: division by zero");
    return a.as_double() / b.as_double();
  }
  if (op == "//" || op == "%") {
    if (ints) {
      const int64_t x = a.as_integer(), y = b.as_integer();
      if (y == 0) fail("ZeroDivisionError: integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) overflow();
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        q -= 1;
        m += y;
      }
      return op == "//" ? q : m;
    }
    const auto [q, m] = float_divmod(a.as_double(), b.as_double());
    return op == "//" ? q : m;
  }
  if (op == "**") {
    if (ints && b.as_integer() >= 0) {
      int64_t result = 1, base = a.as_integer();
      for (int64_t e = b.as_integer(); e > 0;) {  // by squaring; any overflow is a real one
        if (e & 1) result = mul(result, base);
        e >>= 1;
        if (e > 0) base = mul(base, base);
      }
      return result;
    }
    if (a.as_double() == 0.0 && b.as_double() < 0) fail("ZeroDivisionError: 0.0 cannot be raised to a negative power");
    return std::pow(a.as_double(), b.as_double());
  }
  fail("unsupported operator {}", op);
}

class Renderer {
 public:
  explicit Renderer(const Context& context) : context_(context) { frames_.emplace_back(); }

  enum class Flow { kNormal, kBreak, kContinue };

  Flow exec(const Body& body, std::string& out) {
    for (const auto& s : body) {
      const Flow f = exec_located(*s, out);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

 private:
  using Frame = std::vector<std::pair<std::string, Value>>;

  Flow exec_located(const Stmt& s, std::string& out) {
    try {
      return exec(s, out);
    } catch (const TemplateError& e) {
      if (e.line() == 0) throw TemplateError(e.message(), s.line);
      throw;
    }
  }

  Flow exec(const Stmt& s, std::string& out) {
    step();
    switch (s.kind) {
      case StmtKind::kText:
        append(out, s.text);
        return Flow::kNormal;
      case StmtKind::kOutput:
        append(out, to_str(eval(*s.expr)));
        return Flow::kNormal;
      case StmtKind::kIf:
        for (const auto& [cond, body] : s.branches) {
          if (truthy(eval(*cond))) return exec(body, out);
        }
        return exec(s.else_body, out);
      case StmtKind::kFor:
        return exec_for(s, out);
      case StmtKind::kSet:
        exec_set(s, eval(*s.expr));
        return Flow::kNormal;
      case StmtKind::kSetBlock: {
        std::string captured;
        exec(s.body, captured);
        assign(s.targets[0], Value(std::move(captured)));
        return Flow::kNormal;
      }
      case StmtKind::kBreak:
        return Flow::kBreak;
      case StmtKind::kContinue:
        return Flow::kContinue;
    }
    return Flow::kNormal;
  }

  // One statement or loop iteration of the render's budget.
  void step() {
    if (++steps_ > kMaxRenderSteps) fail("the template ran past {} statements and loop iterations", kMaxRenderSteps);
  }

  static void append(std::string& out, std::string_view text) {
    if (out.size() + text.size() > kMaxStringBytes) fail("the template's output passed {} bytes", kMaxStringBytes);
    out += text;
  }

  void bind(const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
      assign(targets[0], v);
      return;
    }
    const std::vector<Value> parts = iterate(v);
    if (parts.size() != targets.size()) {
      fail("ValueError: {} values to unpack (expected {}, got {})", parts.size() > targets.size() ? "too many" : "not enough",
           targets.size(), parts.size());
    }
    for (size_t i = 0; i < parts.size(); ++i) assign(targets[i], parts[i]);
  }

  void exec_set(const Stmt& s, const Value& v) {
    if (s.attribute.empty()) {
      bind(s.targets, v);
      return;
    }
    const Value ns = lookup(s.targets[0]);
    if (!ns.is_namespace()) fail("cannot assign attribute on non-namespace object '{}'", s.targets[0]);
    ns.as_namespace().set(s.attribute, v);
  }

  Flow exec_for(const Stmt& s, std::string& out) {
    std::vector<Value> items = iterate(eval(*s.expr));
    if (s.filter) {
      std::vector<Value> kept;
      for (Value& item : items) {
        step();
        frames_.emplace_back();
        bind(s.targets, item);
        const bool keep = truthy(eval(*s.filter));
        frames_.pop_back();
        if (keep) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(s.else_body, out);
    const auto n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      step();
      frames_.emplace_back();
      bind(s.targets, items[static_cast<size_t>(i)]);
      assign("loop", loop_object(items, i));
      const Flow f = exec(s.body, out);
      frames_.pop_back();
      if (f == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  static Value loop_object(const std::vector<Value>& items, int64_t i) {
    const auto n = static_cast<int64_t>(items.size());
    const Value previous = i > 0 ? items[static_cast<size_t>(i - 1)] : Value(Undefined{"there is no previous item"});
    const Value next = i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value(Undefined{"there is no next item"});
    Value cycle = Value::function("cycle", [i](CallArgs& a) -> Value {
      if (a.positional.empty()) fail("TypeError: no items for cycling given");
      return a.positional[static_cast<size_t>(i) % a.positional.size()];
    });
    return Value::dict({{Value("index"), Value(i + 1)},
                        {Value("index0"), Value(i)},
                        {Value("revindex"), Value(n - i)},
                        {Value("revindex0"), Value(n - i - 1)},
                        {Value("first"), Value(i == 0)},
                        {Value("last"), Value(i == n - 1)},
                        {Value("length"), Value(n)},
                        {Value("previtem"), previous},
                        {Value("nextitem"), next},
                        {Value("depth"), Value(1)},
                        {Value("depth0"), Value(0)},
                        {Value("cycle"), cycle}});
  }

  void assign(const std::string& name, Value v) {
    Frame& frame = frames_.back();
    for (auto& [k, existing] : frame) {
      if (k == name) {
        existing = std::move(v);
        return;
      }
    }
    frame.emplace_back(name, std::move(v));
  }

  Value lookup(const std::string& name) const {
    for (auto f = frames_.rbegin(); f != frames_.rend(); ++f) {
      for (const auto& [k, v] : *f) {
        if (k == name) return v;
      }
    }
    for (const auto& [k, v] : context_) {
      if (k == name) return v;
    }
    return global_function(name);
  }

  CallArgs arguments(const Expr& e, size_t first, std::string function) {
    CallArgs args;
    args.function = std::move(function);
    for (size_t i = first; i < e.operands.size(); ++i) args.positional.push_back(eval(*e.operands[i]));
    for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, eval(*v));
    return args;
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case ExprKind::kLiteral:
        return e.literal;
      case ExprKind::kName:
        return lookup(e.name);
      case ExprKind::kList:
      case ExprKind::kTuple: {
        std::vector<Value> items;
        for (const auto& op : e.operands) items.push_back(eval(*op));
        return Value::list(std::move(items), e.kind == ExprKind::kTuple ? SeqKind::kTuple : SeqKind::kList);
      }
      case ExprKind::kDict: {
        std::vector<std::pair<Value, Value>> entries;
        for (size_t i = 0; i + 1 < e.operands.size(); i += 2) {
          Value key = eval(*e.operands[i]);
          Value value = eval(*e.operands[i + 1]);
          bool replaced = false;
          for (auto& [k, v] : entries) {
            if (equals(k, key)) {
              v = value;
              replaced = true;
            }
          }
          if (!replaced) entries.emplace_back(std::move(key), std::move(value));
        }
        return Value::dict(std::move(entries));
      }
      case ExprKind::kGetAttr:
        return get_attribute(eval(*e.operands[0]), e.name);
      case ExprKind::kGetItem:
        return get_item(eval(*e.operands[0]), eval(*e.operands[1]));
      case ExprKind::kSlice: {
        const Value obj = eval(*e.operands[0]);
        auto part = [&](size_t i) { return e.operands[i] ? eval(*e.operands[i]) : Value(None{}); };
        return get_slice(obj, part(1), part(2), part(3));
      }
      case ExprKind::kCall: {
        const Value callee = eval(*e.operands[0]);
        if (callee.is_undefined()) fail_undefined(callee);
        if (!callee.is_function()) fail("TypeError: '{}' object is not callable", type_name(callee));
        CallArgs args = arguments(e, 1, callee.as_function().name);
        return callee.as_function().call(args);
      }
      case ExprKind::kFilter: {
        const Value input = eval(*e.operands[0]);
        CallArgs args = arguments(e, 1, e.name);
        return call_filter(e.name, input, args);
      }
      case ExprKind::kTest: {
        const Value input = eval(*e.operands[0]);
        CallArgs args = arguments(e, 1, e.name);
        return call_test(e.name, input, args);
      }
      case ExprKind::kNot:
        return !truthy(eval(*e.operands[0]));
      case ExprKind::kNegate:
      case ExprKind::kPlus: {
        const Value v = eval(*e.operands[0]);
        if (v.is_undefined()) fail_undefined(v);
        if (!v.is_number()) fail("TypeError: bad operand type for unary {}: '{}'", e.kind == ExprKind::kNegate ? '-' : '+', type_name(v));
        if (e.kind == ExprKind::kPlus) return v.is_float() ? v : Value(v.as_integer());
        if (v.is_float()) return -v.as_float();
        return sub(0, v.as_integer());
      }
      case ExprKind::kBinary:
        return arithmetic(e.name, eval(*e.operands[0]), eval(*e.operands[1]));
      case ExprKind::kAnd: {
        Value a = eval(*e.operands[0]);
        return truthy(a) ? eval(*e.operands[1]) : a;
      }
      case ExprKind::kOr: {
        Value a = eval(*e.operands[0]);
        return truthy(a) ? a : eval(*e.operands[1]);
      }
      case ExprKind::kCompare:
        return compare(e);
      case ExprKind::kCondition:
        if (truthy(eval(*e.operands[1]))) return eval(*e.operands[0]);
        return e.operands[2] ? eval(*e.operands[2]) : Value(Undefined{"the condition was false and there is no else"});
    }
    fail("unknown expression");
  }

  bool compare(const Expr& e) {
    Value left = eval(*e.operands[0]);
    for (size_t i = 0; i < e.ops.size(); ++i) {
      Value right = eval(*e.operands[i + 1]);
      const std::string& op = e.ops[i];
      bool ok = false;
      if (op == "==") ok = equals(left, right);
      else if (op == "!=") ok = !equals(left, right);
      else if (op == "<") ok = less(left, right);
      else if (op == ">") ok = less(right, left);
      else if (op == "<=") ok = less(left, right) || equals(left, right);
      else if (op == ">=") ok = less(right, left) || equals(left, right);
      else if (op == "in") ok = value_in(left, right);
      else ok = !value_in(left, right);
      if (!ok) return false;
      left = std::move(right);
    }
    return true;
  }

  const Context& context_;
  std::vector<Frame> frames_;
  int64_t steps_ = 0;
};

}  // namespace

std::string render(const Body& body, const Context& context) {
  Renderer r(context);
  std::string out;
  r.exec(body, out);
  return out;
}

}  // namespace mlaserve::tokenizer::jinja
