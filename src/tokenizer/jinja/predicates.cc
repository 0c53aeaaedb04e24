// jinja2's tests (`x is defined`, `x is string`, ...).
#include <algorithm>
#include <cctype>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/template_error.h"

namespace mlaserve::tokenizer::jinja {
namespace {

const Value& argument(const CallArgs& a, std::string_view name) {
  const Value* v = a.get(0, name);
  if (v == nullptr) fail("TypeError: test {}() needs an argument", a.function);
  return *v;
}

// Python's str.islower / str.isupper on ASCII text.
bool ascii_case(const Value& v, bool lower) {
  const std::string s = to_str(v);
  bool cased = false;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80) fail("'is {}' on non-ASCII text is not supported", lower ? "lower" : "upper");
    if (std::isalpha(c)) {
      cased = true;
      if (lower ? std::isupper(c) : std::islower(c)) return false;
    }
  }
  return cased;
}

int64_t integer_of(const Value& v, const char* test) {
  if (!v.is_int() && !v.is_bool()) fail("TypeError: 'is {}' needs an integer, not {}", test, type_name(v));
  return v.as_integer();
}

// Python's `is` for the values where CPython's answer is predictable.
bool same_object(const Value& a, const Value& b) {
  if (a.is_none() || b.is_none()) return a.is_none() && b.is_none();
  if (a.is_bool() || b.is_bool()) return a.is_bool() && b.is_bool() && a.as_bool() == b.as_bool();
  if (a.is_int() && b.is_int()) return a.as_int() == b.as_int() && a.as_int() >= -5 && a.as_int() <= 256;
  if (a.is_sequence() && b.is_sequence()) return &a.as_sequence() == &b.as_sequence();
  if (a.is_dict() && b.is_dict()) return &a.as_dict() == &b.as_dict();
  if (a.is_namespace() && b.is_namespace()) return &a.as_namespace() == &b.as_namespace();
  return false;
}

constexpr std::string_view kTests[] = {
    "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "filter",
    "float", "ge", "gt", "greaterthan", "in", "integer", "iterable", "le", "lessthan", "lower", "lt", "mapping",
    "ne", "none", "number", "odd", "sameas", "sequence", "string", "true", "undefined", "upper", "==", "!=",
    "<", "<=", ">", ">="};

}  // namespace

bool value_in(const Value& item, const Value& container) {
  if (container.is_string()) {
    if (!item.is_string()) fail("TypeError: 'in <string>' requires string as left operand, not {}", type_name(item));
    return container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_dict()) return container.as_dict().find(item) != nullptr;
  for (const Value& v : iterate(container)) {
    if (equals(v, item)) return true;
  }
  return false;
}

bool has_test(std::string_view name) { return std::find(std::begin(kTests), std::end(kTests), name) != std::end(kTests); }

bool call_test(const std::string& name, const Value& v, CallArgs& a) {
  a.function = name;
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "callable") return v.is_function();
  if (name == "escaped") return false;
  if (name == "filter") return v.is_string() && has_filter(v.as_string());
  if (name == "iterable") return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_dict();
  if (name == "sequence") {
    if (v.is_undefined() || v.is_string() || v.is_dict()) return true;
    const SeqKind k = v.is_sequence() ? v.as_sequence().kind : SeqKind::kGenerator;
    return k == SeqKind::kList || k == SeqKind::kTuple || k == SeqKind::kRange;
  }
  if (name == "lower" || name == "upper") return ascii_case(v, name == "lower");
  if (name == "odd") return integer_of(v, "odd") % 2 != 0;
  if (name == "even") return integer_of(v, "even") % 2 == 0;
  if (name == "divisibleby") {
    const int64_t d = integer_of(argument(a, "num"), "divisibleby");
    if (d == 0) fail("ZeroDivisionError: integer modulo by zero");
    return integer_of(v, "divisibleby") % d == 0;
  }
  if (name == "sameas") return same_object(v, argument(a, "other"));
  if (name == "in") return value_in(v, argument(a, "seq"));
  const Value& other = argument(a, "other");
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, other);
  if (name == "ne" || name == "!=") return !equals(v, other);
  if (name == "lt" || name == "lessthan" || name == "<") return less(v, other);
  if (name == "le" || name == "<=") return !less(other, v);
  if (name == "gt" || name == "greaterthan" || name == ">") return less(other, v);
  if (name == "ge" || name == ">=") return !less(v, other);
  fail("unsupported test '{}'", name);
}


}  // namespace mlaserve::tokenizer::jinja
