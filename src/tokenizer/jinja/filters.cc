// jinja2's filters (`x | name(args)`), with the Python semantics of jinja2 3.1 and
// transformers' tojson.
#include <algorithm>
#include <charconv>
#include <cmath>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/py_format.h"
#include "tokenizer/jinja/template_error.h"

namespace mlaserve::tokenizer::jinja {
namespace {

Value generator(std::vector<Value> items) { return Value::list(std::move(items), SeqKind::kGenerator); }

// A float's integer part, as Python's int() takes it, where that fits our 64-bit integers: past
// them (Python's int would be larger, or infinity its OverflowError) an OverflowError, as the
// arithmetic's overflow (converting such a double is undefined behaviour in C++).
int64_t truncate_to_int(double d) {
  if (!(d >= -0x1p63 && d < 0x1p63)) fail("OverflowError: int({}) does not fit in 64 bits", d);
  return static_cast<int64_t>(d);
}

// jinja2's make_attrgetter: "a.b.0" looked up part by part with item access.
Value lookup_path(const Value& item, const Value& attribute) {
  if (attribute.is_int()) return get_item(item, attribute);
  if (!attribute.is_string()) fail("TypeError: attribute must be a string or an integer");
  Value v = item;
  const std::string& path = attribute.as_string();
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    int64_t index = 0;
    const auto res = std::from_chars(part.data(), part.data() + part.size(), index);
    const bool numeric = !part.empty() && res.ec == std::errc() && res.ptr == part.data() + part.size();
    v = get_item(v, numeric ? Value(index) : Value(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

// select/reject/selectattr/rejectattr: keeps items whose test result equals `keep`.
Value select(const Value& input, CallArgs& a, bool by_attribute, bool keep) {
  size_t first_test_arg = 0;
  Value attribute;
  if (by_attribute) {
    const Value* attr = a.get(0, "attribute");
    if (attr == nullptr) fail("TypeError: {}() needs an attribute name", a.function);
    attribute = *attr;
    first_test_arg = 1;
  }
  if (!a.keyword.empty()) fail("TypeError: {}() takes no keyword arguments", a.function);
  const Value* test = first_test_arg < a.positional.size() ? &a.positional[first_test_arg] : nullptr;
  if (test != nullptr && !test->is_string()) fail("TypeError: {}() test name must be a string", a.function);
  if (test != nullptr && !has_test(test->as_string())) fail("unsupported test '{}'", test->as_string());
  CallArgs test_args;
  for (size_t i = first_test_arg + 1; i < a.positional.size(); ++i) test_args.positional.push_back(a.positional[i]);
  std::vector<Value> out;
  for (const Value& item : iterate(input)) {
    const Value subject = by_attribute ? lookup_path(item, attribute) : item;
    const bool passed = test == nullptr ? truthy(subject) : call_test(test->as_string(), subject, test_args);
    if (passed == keep) out.push_back(item);
  }
  return generator(std::move(out));
}

Value map(const Value& input, CallArgs& a) {
  std::vector<Value> out;
  if (const Value* attr = a.get(99, "attribute")) {
    const Value* fallback = a.get(99, "default");
    for (const Value& item : iterate(input)) {
      Value v = lookup_path(item, *attr);
      out.push_back(v.is_undefined() && fallback != nullptr ? *fallback : v);
    }
    return generator(std::move(out));
  }
  if (a.positional.empty() || !a.positional[0].is_string()) fail("TypeError: map() needs a filter name or attribute=");
  const std::string filter = a.positional[0].as_string();
  if (!has_filter(filter)) fail("unsupported filter '{}'", filter);
  for (const Value& item : iterate(input)) {
    CallArgs fa;
    fa.positional.assign(a.positional.begin() + 1, a.positional.end());
    fa.keyword = a.keyword;
    out.push_back(call_filter(filter, item, fa));
  }
  return generator(std::move(out));
}

// The key a sort/unique compares by: the attribute, lower-cased unless case_sensitive.
Value sort_key(const Value& item, const Value* attribute, bool case_sensitive) {
  Value key = attribute != nullptr && !attribute->is_none() ? lookup_path(item, *attribute) : item;
  if (!case_sensitive && key.is_string()) return ascii_lower(key.as_string(), "case-insensitive sorting");
  return key;
}

Value tojson(const Value& input, CallArgs& a) {
  a.expect(4, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonOptions o;
  if (const Value* v = a.get(0, "ensure_ascii")) o.ensure_ascii = truthy(*v);
  if (const Value* v = a.get(1, "indent"); v != nullptr && !v->is_none()) {
    if (v->is_int()) {
      o.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, v->as_int())), ' ');
    } else if (v->is_string()) {
      o.indent = v->as_string();
    } else {
      fail("TypeError: tojson indent must be an integer or a string");
    }
    o.item_separator.resize(1);  // json.dumps uses "," instead of ", " with an indent
  }
  if (const Value* v = a.get(2, "separators"); v != nullptr && !v->is_none()) {
    if (!v->is_sequence() || v->as_sequence().items.size() != 2 || !v->as_sequence().items[0].is_string() ||
        !v->as_sequence().items[1].is_string()) {
      fail("TypeError: tojson separators must be a pair of strings");
    }
    o.item_separator = v->as_sequence().items[0].as_string();
    o.key_separator = v->as_sequence().items[1].as_string();
  }
  if (const Value* v = a.get(3, "sort_keys")) o.sort_keys = truthy(*v);
  return json_dumps(input, o);
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// Python's int(str) / float(str) for the number filters: surrounding whitespace allowed.
std::optional<double> parse_float(const std::string& s) {
  const std::string t = py_strip(s, nullptr, true, true);
  double d = 0;
  const auto res = std::from_chars(t.data(), t.data() + t.size(), d);
  if (t.empty() || res.ec != std::errc() || res.ptr != t.data() + t.size()) return std::nullopt;
  return d;
}

std::optional<int64_t> parse_int(const std::string& s) {
  const std::string stripped = py_strip(s, nullptr, true, true);
  const std::string_view t = stripped.starts_with('+') ? std::string_view(stripped).substr(1) : std::string_view(stripped);
  int64_t i = 0;
  const auto res = std::from_chars(t.data(), t.data() + t.size(), i);
  if (t.empty() || res.ec != std::errc() || res.ptr != t.data() + t.size()) return std::nullopt;
  return i;
}

constexpr std::string_view kFilters[] = {
    "abs", "capitalize", "count", "d", "default", "e", "escape", "first", "float", "int", "items", "join", "last",
    "length", "list", "lower", "map", "reject", "rejectattr", "replace", "reverse", "safe", "select", "selectattr",
    "sort", "string", "sum", "tojson", "trim", "unique", "upper"};

}  // namespace

bool has_filter(std::string_view name) {
  return std::find(std::begin(kFilters), std::end(kFilters), name) != std::end(kFilters);
}

Value call_filter(const std::string& name, const Value& v, CallArgs& a) {
  a.function = name;
  if (name == "default" || name == "d") {
    a.expect(2, {"default_value", "boolean"});
    const Value* fallback = a.get(0, "default_value");
    const Value* boolean = a.get(1, "boolean");
    if (v.is_undefined() || (boolean != nullptr && truthy(*boolean) && !truthy(v))) return fallback ? *fallback : Value("");
    return v;
  }
  if (name == "length" || name == "count") return length(v);
  if (name == "string") return to_str(v);
  if (name == "safe") return v;
  if (name == "list") return Value::list(iterate(v));
  if (name == "trim") {
    a.expect(1, {"chars"});
    return py_strip(to_str(v), a.get(0, "chars"), true, true);
  }
  if (name == "lower") return ascii_lower(to_str(v), "|lower");
  if (name == "upper") return ascii_upper(to_str(v), "|upper");
  if (name == "capitalize") {
    CallArgs none;
    return get_attribute(Value(to_str(v)), "capitalize").as_function().call(none);
  }
  if (name == "e" || name == "escape") return html_escape(to_str(v));
  if (name == "tojson") return tojson(v, a);
  if (name == "join") {
    a.expect(2, {"d", "attribute"});
    const Value* sep_value = a.get(0, "d");
    const std::string sep = sep_value != nullptr ? to_str(*sep_value) : std::string();
    const Value* attribute = a.get(1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& item : iterate(v)) {
      if (!first) out += sep;
      out += to_str(attribute != nullptr && !attribute->is_none() ? lookup_path(item, *attribute) : item);
      first = false;
    }
    return out;
  }
  if (name == "first") {
    if (v.is_sequence() && v.as_sequence().kind == SeqKind::kGenerator) {
      const Sequence& g = v.as_sequence();
      if (g.consumed < g.items.size()) return g.items[g.consumed++];
      return Undefined{"No first item, sequence was empty."};
    }
    const std::vector<Value> items = iterate(v);
    return items.empty() ? Value(Undefined{"No first item, sequence was empty."}) : items.front();
  }
  if (name == "last") {
    if (v.is_sequence() && v.as_sequence().kind == SeqKind::kGenerator) fail("TypeError: 'generator' object is not reversible");
    const std::vector<Value> items = iterate(v);
    return items.empty() ? Value(Undefined{"No last item, sequence was empty."}) : items.back();
  }
  if (name == "reverse") {
    if (v.is_string()) return get_slice(v, Value(), Value(), Value(-1));
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    const bool reversible = v.is_dict() || (v.is_sequence() && v.as_sequence().kind != SeqKind::kGenerator);
    return reversible ? generator(std::move(items)) : Value::list(std::move(items));
  }
  if (name == "items") {
    if (v.is_undefined()) return generator({});
    if (!v.is_dict()) fail("TypeError: Can only get item pairs from a mapping.");
    std::vector<Value> pairs;
    for (const auto& [k, val] : v.as_dict().entries) pairs.push_back(Value::list({k, val}, SeqKind::kTuple));
    return generator(std::move(pairs));
  }
  if (name == "map") return map(v, a);
  if (name == "select" || name == "reject") return select(v, a, false, name == "select");
  if (name == "selectattr" || name == "rejectattr") return select(v, a, true, name == "selectattr");
  if (name == "sort" || name == "unique") {
    const bool sort = name == "sort";
    sort ? a.expect(3, {"reverse", "case_sensitive", "attribute"}) : a.expect(2, {"case_sensitive", "attribute"});
    const Value* rev = sort ? a.get(0, "reverse") : nullptr;
    const Value* cs = a.get(sort ? 1 : 0, "case_sensitive");
    const Value* attribute = a.get(sort ? 2 : 1, "attribute");
    const bool case_sensitive = cs != nullptr && truthy(*cs);
    std::vector<Value> items = iterate(v);
    if (!sort) {
      std::vector<Value> seen, out;
      for (const Value& item : items) {
        const Value key = sort_key(item, attribute, case_sensitive);
        if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) {
          seen.push_back(key);
          out.push_back(item);
        }
      }
      return generator(std::move(out));
    }
    std::vector<std::pair<Value, Value>> keyed;
    for (const Value& item : items) keyed.emplace_back(sort_key(item, attribute, case_sensitive), item);
    const bool descending = rev != nullptr && truthy(*rev);
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
      return descending ? less(y.first, x.first) : less(x.first, y.first);
    });
    std::vector<Value> out;
    for (auto& [k, item] : keyed) out.push_back(std::move(item));
    return Value::list(std::move(out));
  }
  if (name == "sum") {
    a.expect(2, {"attribute", "start"});
    const Value* attribute = a.get(0, "attribute");
    const Value* start = a.get(1, "start");
    Value total = start != nullptr ? *start : Value(int64_t{0});
    for (const Value& item : iterate(v)) {
      const Value x = attribute != nullptr && !attribute->is_none() ? lookup_path(item, *attribute) : item;
      if (!x.is_number() || !total.is_number()) fail("TypeError: sum() of non-numbers ({})", type_name(x));
      if (x.is_float() || total.is_float()) {
        total = total.as_double() + x.as_double();
      } else {
        int64_t r = 0;
        if (__builtin_add_overflow(total.as_integer(), x.as_integer(), &r)) fail("OverflowError: integer sum overflow");
        total = r;
      }
    }
    return total;
  }
  if (name == "abs") {
    if (v.is_float()) return std::fabs(v.as_float());
    if (v.is_int() || v.is_bool()) return v.as_integer() < 0 ? -v.as_integer() : v.as_integer();
    fail("TypeError: bad operand type for abs(): '{}'", type_name(v));
  }
  if (name == "replace") {
    a.expect(3, {"old", "new", "count"});
    CallArgs ra;
    for (size_t i = 0; i < 3; ++i) {
      const char* names[] = {"old", "new", "count"};
      if (const Value* x = a.get(i, names[i]); x != nullptr && !(i == 2 && x->is_none())) ra.positional.push_back(*x);
    }
    return get_attribute(Value(to_str(v)), "replace").as_function().call(ra);
  }
  if (name == "int") {
    a.expect(2, {"default", "base"});
    const Value* fallback = a.get(0, "default");
    if (const Value* base = a.get(1, "base"); base != nullptr && !(base->is_int() && base->as_int() == 10)) {
      fail("|int with a base other than 10 is not supported");
    }
    const Value dflt = fallback != nullptr ? *fallback : Value(int64_t{0});
    if (v.is_int() || v.is_bool()) return v.as_integer();
    // jinja2 3.1: int(x) of a float, whose ValueError (NaN) gives the default and whose OverflowError
    // (infinity) propagates; a string's int(float(x)) gives the default for either.
    if (v.is_float()) return std::isnan(v.as_float()) ? dflt : Value(truncate_to_int(v.as_float()));
    if (v.is_string()) {
      if (const auto i = parse_int(v.as_string())) return *i;
      if (const auto d = parse_float(v.as_string()); d && std::isfinite(*d)) return truncate_to_int(*d);
    }
    return dflt;
  }
  if (name == "float") {
    a.expect(1, {"default"});
    const Value* fallback = a.get(0, "default");
    if (v.is_number()) return v.as_double();
    if (v.is_string()) {
      if (const auto d = parse_float(v.as_string())) return *d;
    }
    return fallback != nullptr ? *fallback : Value(0.0);
  }
  fail("unsupported filter '{}'", name);
}

}  // namespace mlaserve::tokenizer::jinja
