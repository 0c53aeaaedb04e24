#include "tokenizer/jinja/value.h"

#include <algorithm>
#include <cmath>

#include "tokenizer/jinja/py_format.h"
#include "tokenizer/jinja/template_error.h"
#include "tokenizer/utf8.h"

namespace mlaserve::tokenizer::jinja {

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : entries) {
    if (equals(k, key)) return &v;
  }
  return nullptr;
}

const Value* Namespace::find(std::string_view name) const {
  for (const auto& [k, v] : attrs) {
    if (k == name) return &v;
  }
  return nullptr;
}

namespace {

// How deep `v` nests containers (0 for a scalar), and whether it is or holds a namespace.
int nesting(const Value& v) {
  if (v.is_sequence()) return v.as_sequence().depth;
  if (v.is_dict()) return v.as_dict().depth;
  if (v.is_namespace()) return v.as_namespace().depth;
  return 0;
}

bool holds_namespace(const Value& v) {
  return v.is_namespace() || (v.is_sequence() && v.as_sequence().holds_namespace) ||
         (v.is_dict() && v.as_dict().holds_namespace);
}

void check_items(size_t n) {
  if (n > kMaxItems) fail("unsupported: a list or dict of more than {} items", kMaxItems);
}

// The depth of a container of `inner`-deep values; fails past the limit.
int container_depth(int inner) {
  if (inner + 1 > kMaxValueNesting) fail("unsupported: values nested deeper than {} levels", kMaxValueNesting);
  return inner + 1;
}

}  // namespace

void fail_string_too_long(size_t bytes) {
  fail("unsupported: a string of more than {} bytes ({})", kMaxStringBytes, bytes);
}

void Namespace::set(std::string_view name, Value value) {
  if (holds_namespace(value)) {
    fail("unsupported: a namespace attribute holding a namespace ('{}'), directly or in a list or dict", name);
  }
  depth = std::max(depth, container_depth(nesting(value)));
  for (auto& [k, v] : attrs) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  attrs.emplace_back(std::string(name), std::move(value));
}

Value Value::list(std::vector<Value> items, SeqKind kind) {
  check_items(items.size());
  auto s = std::make_shared<Sequence>();
  s->kind = kind;
  int inner = 0;
  for (const Value& item : items) {
    inner = std::max(inner, nesting(item));
    s->holds_namespace = s->holds_namespace || holds_namespace(item);
  }
  s->depth = container_depth(inner);
  s->items = std::move(items);
  return Value(std::shared_ptr<const Sequence>(std::move(s)));
}

Value Value::dict(std::vector<std::pair<Value, Value>> entries) {
  check_items(entries.size());
  auto d = std::make_shared<Dict>();
  int inner = 0;
  for (const auto& [key, value] : entries) {
    inner = std::max({inner, nesting(key), nesting(value)});
    d->holds_namespace = d->holds_namespace || holds_namespace(key) || holds_namespace(value);
  }
  d->depth = container_depth(inner);
  d->entries = std::move(entries);
  return Value(std::shared_ptr<const Dict>(std::move(d)));
}

Value Value::function(std::string name, std::function<Value(CallArgs&)> call) {
  return Value(std::make_shared<const Function>(Function{std::move(name), std::move(call)}));
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return None{};
    case nlohmann::ordered_json::value_t::boolean:
      return j.get<bool>();
    case nlohmann::ordered_json::value_t::number_integer:
      return j.get<int64_t>();
    case nlohmann::ordered_json::value_t::number_unsigned:
      if (j.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) fail("integer {} is too large", j.get<uint64_t>());
      return static_cast<int64_t>(j.get<uint64_t>());
    case nlohmann::ordered_json::value_t::number_float:
      return j.get<double>();
    case nlohmann::ordered_json::value_t::string:
      return j.get<std::string>();
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e));
      return list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      std::vector<std::pair<Value, Value>> entries;
      entries.reserve(j.size());
      for (const auto& [k, v] : j.items()) entries.emplace_back(Value(k), from_json(v));
      return dict(std::move(entries));
    }
    default:
      fail("unsupported JSON value of type {}", j.type_name());
  }
}

double Value::as_double() const {
  if (is_float()) return as_float();
  return static_cast<double>(as_integer());
}

int64_t Value::as_integer() const { return is_bool() ? int64_t{as_bool()} : as_int(); }

const Value* CallArgs::get(size_t index, std::string_view name) const {
  if (index < positional.size()) return &positional[index];
  for (const auto& [k, v] : keyword) {
    if (k == name) return &v;
  }
  return nullptr;
}

void CallArgs::expect(size_t max_positional, std::initializer_list<std::string_view> keywords) const {
  if (positional.size() > max_positional) {
    fail("TypeError: {}() takes at most {} positional arguments ({} given)", function, max_positional, positional.size());
  }
  for (const auto& [k, v] : keyword) {
    bool known = false;
    for (const auto name : keywords) known = known || name == k;
    if (!known) fail("TypeError: {}() got an unexpected keyword argument '{}'", function, k);
  }
}

std::string type_name(const Value& v) {
  if (v.is_undefined()) return "Undefined";
  if (v.is_none()) return "NoneType";
  if (v.is_bool()) return "bool";
  if (v.is_int()) return "int";
  if (v.is_float()) return "float";
  if (v.is_string()) return "str";
  if (v.is_dict()) return "dict";
  if (v.is_namespace()) return "Namespace";
  if (v.is_function()) return "builtin_function_or_method";
  switch (v.as_sequence().kind) {
    case SeqKind::kList: return "list";
    case SeqKind::kTuple: return "tuple";
    case SeqKind::kRange: return "range";
    case SeqKind::kGenerator: return "generator";
    case SeqKind::kDictKeys: return "dict_keys";
    case SeqKind::kDictValues: return "dict_values";
    case SeqKind::kDictItems: return "dict_items";
  }
  return "object";
}

void fail_undefined(const Value& v) { throw TemplateError("UndefinedError: " + v.as_undefined().hint); }

bool truthy(const Value& v) {
  if (v.is_undefined() || v.is_none()) return false;
  if (v.is_bool()) return v.as_bool();
  if (v.is_int()) return v.as_int() != 0;
  if (v.is_float()) return v.as_float() != 0.0;
  if (v.is_string()) return !v.as_string().empty();
  if (v.is_dict()) return !v.as_dict().entries.empty();
  if (v.is_sequence()) return v.as_sequence().kind == SeqKind::kGenerator || !v.as_sequence().items.empty();
  return true;
}

namespace {

bool numbers_equal(const Value& a, const Value& b) {
  if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
  return a.as_integer() == b.as_integer();
}

bool same_sequence_family(SeqKind a, SeqKind b) {
  // Python compares list with list and tuple with tuple; the other kinds only with themselves.
  return a == b;
}

}  // namespace

bool equals(const Value& a, const Value& b) {
  if (a.is_undefined() || b.is_undefined()) return a.is_undefined() && b.is_undefined();
  if (a.is_number() && b.is_number()) return numbers_equal(a, b);
  if (a.is_none() || b.is_none()) return a.is_none() && b.is_none();
  if (a.is_string() && b.is_string()) return a.as_string() == b.as_string();
  if (a.is_sequence() && b.is_sequence()) {
    const Sequence& x = a.as_sequence();
    const Sequence& y = b.as_sequence();
    if (&x == &y) return true;
    if (!same_sequence_family(x.kind, y.kind) || x.kind == SeqKind::kGenerator) return false;
    if (x.items.size() != y.items.size()) return false;
    for (size_t i = 0; i < x.items.size(); ++i) {
      if (!equals(x.items[i], y.items[i])) return false;
    }
    return true;
  }
  if (a.is_dict() && b.is_dict()) {
    const Dict& x = a.as_dict();
    const Dict& y = b.as_dict();
    if (x.entries.size() != y.entries.size()) return false;
    for (const auto& [k, v] : x.entries) {
      const Value* other = y.find(k);
      if (other == nullptr || !equals(v, *other)) return false;
    }
    return true;
  }
  if (a.is_namespace() && b.is_namespace()) return &a.as_namespace() == &b.as_namespace();
  if (a.is_function() && b.is_function()) return &a.as_function() == &b.as_function();
  return false;
}

bool less(const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_integer() < b.as_integer();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();  // UTF-8 order is code point order
  if (a.is_sequence() && b.is_sequence() && a.as_sequence().kind == b.as_sequence().kind &&
      (a.as_sequence().kind == SeqKind::kList || a.as_sequence().kind == SeqKind::kTuple)) {
    const auto& x = a.as_sequence().items;
    const auto& y = b.as_sequence().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals(x[i], y[i])) return less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  fail("TypeError: '<' not supported between instances of '{}' and '{}'", type_name(a), type_name(b));
}

namespace {

std::string join_repr(const std::vector<Value>& items, size_t from = 0) {
  std::string out;
  for (size_t i = from; i < items.size(); ++i) {
    if (i > from) out += ", ";
    out += repr(items[i]);
  }
  return out;
}

std::string dict_repr(const Dict& d) {
  std::string out = "{";
  for (size_t i = 0; i < d.entries.size(); ++i) {
    if (i > 0) out += ", ";
    out += repr(d.entries[i].first) + ": " + repr(d.entries[i].second);
  }
  return out + "}";
}

}  // namespace

std::string to_str(const Value& v) {
  if (v.is_undefined()) return "";
  if (v.is_string()) return v.as_string();
  return repr(v);
}

std::string repr(const Value& v) {
  if (v.is_undefined()) return "Undefined";
  if (v.is_none()) return "None";
  if (v.is_bool()) return v.as_bool() ? "True" : "False";
  if (v.is_int()) return std::to_string(v.as_int());
  if (v.is_float()) return float_repr(v.as_float());
  if (v.is_string()) return string_repr(v.as_string());
  if (v.is_dict()) return dict_repr(v.as_dict());
  if (v.is_namespace()) {
    Dict d;
    for (const auto& [k, val] : v.as_namespace().attrs) d.entries.emplace_back(Value(k), val);
    return "<Namespace " + dict_repr(d) + ">";
  }
  if (v.is_function()) fail("cannot print the function {}(): Python prints an object address", v.as_function().name);
  const Sequence& s = v.as_sequence();
  switch (s.kind) {
    case SeqKind::kList: return "[" + join_repr(s.items) + "]";
    case SeqKind::kTuple: return "(" + join_repr(s.items) + (s.items.size() == 1 ? ",)" : ")");
    case SeqKind::kRange:
      return s.range_step == 1 ? fmt::format("range({}, {})", s.range_start, s.range_stop)
                               : fmt::format("range({}, {}, {})", s.range_start, s.range_stop, s.range_step);
    case SeqKind::kDictKeys: return "dict_keys([" + join_repr(s.items) + "])";
    case SeqKind::kDictValues: return "dict_values([" + join_repr(s.items) + "])";
    case SeqKind::kDictItems: return "dict_items([" + join_repr(s.items) + "])";
    case SeqKind::kGenerator: break;
  }
  fail("cannot print a generator (the result of map, select, reject or reverse): Python prints an object address; "
       "apply |list or |join first");
}

std::vector<Value> iterate(const Value& v) {
  if (v.is_undefined()) return {};
  if (v.is_string()) {
    std::vector<Value> chars;
    const std::string& s = v.as_string();
    size_t i = 0;
    while (i < s.size()) {
      const size_t start = i;
      utf8::decode(s, i);
      chars.emplace_back(s.substr(start, i - start));
    }
    return chars;
  }
  if (v.is_sequence()) {
    const Sequence& s = v.as_sequence();
    if (s.kind != SeqKind::kGenerator) return s.items;
    std::vector<Value> rest(s.items.begin() + static_cast<ptrdiff_t>(s.consumed), s.items.end());
    s.consumed = s.items.size();
    return rest;
  }
  if (v.is_dict()) {
    std::vector<Value> keys;
    for (const auto& [k, val] : v.as_dict().entries) keys.push_back(k);
    return keys;
  }
  fail("TypeError: '{}' object is not iterable", type_name(v));
}

int64_t length(const Value& v) {
  if (v.is_undefined()) return 0;
  if (v.is_string()) return static_cast<int64_t>(utf8::count_code_points(v.as_string()));
  if (v.is_dict()) return static_cast<int64_t>(v.as_dict().entries.size());
  if (v.is_sequence() && v.as_sequence().kind != SeqKind::kGenerator) {
    return static_cast<int64_t>(v.as_sequence().items.size());
  }
  fail("TypeError: object of type '{}' has no len()", type_name(v));
}

}  // namespace mlaserve::tokenizer::jinja
