// Attribute and item access, Python's str/dict/list methods, and the global functions.
#include <algorithm>
#include <cctype>
#include <ctime>
#include <optional>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/template_error.h"
#include "tokenizer/unicode_props.h"
#include "tokenizer/utf8.h"

namespace mlaserve::tokenizer::jinja {
namespace {

std::u32string code_points(const std::string& s) {
  std::u32string out;
  size_t i = 0;
  while (i < s.size()) out.push_back(utf8::decode(s, i));
  return out;
}

std::string to_utf8(std::u32string_view s) {
  std::string out;
  for (const char32_t c : s) utf8::append(out, c);
  return out;
}

bool is_ascii(const std::string& s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

const std::string& string_arg(const CallArgs& a, size_t i, std::string_view name) {
  const Value* v = a.get(i, name);
  if (v == nullptr) fail("TypeError: {}() missing required argument '{}'", a.function, name);
  if (!v->is_string()) fail("TypeError: {}() argument '{}' must be str, not {}", a.function, name, type_name(*v));
  return v->as_string();
}

int64_t int_arg(const CallArgs& a, size_t i, std::string_view name, int64_t fallback) {
  const Value* v = a.get(i, name);
  if (v == nullptr || v->is_none()) return fallback;
  if (!v->is_int() && !v->is_bool()) fail("TypeError: {}() argument '{}' must be int, not {}", a.function, name, type_name(*v));
  return v->as_integer();
}

// Python's str.split / str.rsplit.
Value split(const std::string& s, const Value* sep, int64_t maxsplit, bool from_right) {
  std::vector<Value> parts;
  const std::u32string cps = code_points(s);
  if (sep == nullptr || sep->is_none()) {
    // Runs of whitespace separate; empty strings never appear.
    std::vector<std::pair<size_t, size_t>> words;  // [start, end) in code points
    const auto space = [&](size_t i) { return unicode::is_python_space(cps[i]); };
    if (!from_right) {
      size_t i = 0;
      while (i < cps.size()) {
        while (i < cps.size() && space(i)) ++i;
        if (i == cps.size()) break;
        if (maxsplit >= 0 && static_cast<int64_t>(words.size()) == maxsplit) {
          words.emplace_back(i, cps.size());
          break;
        }
        const size_t start = i;
        while (i < cps.size() && !space(i)) ++i;
        words.emplace_back(start, i);
      }
    } else {
      size_t i = cps.size();
      while (i > 0) {
        while (i > 0 && space(i - 1)) --i;
        if (i == 0) break;
        if (maxsplit >= 0 && static_cast<int64_t>(words.size()) == maxsplit) {
          words.emplace_back(0, i);
          break;
        }
        const size_t end = i;
        while (i > 0 && !space(i - 1)) --i;
        words.emplace_back(i, end);
      }
      std::reverse(words.begin(), words.end());
    }
    for (const auto& [a, b] : words) parts.emplace_back(to_utf8(std::u32string_view(cps).substr(a, b - a)));
    return Value::list(std::move(parts));
  }
  if (!sep->is_string()) fail("TypeError: must be str or None, not {}", type_name(*sep));
  const std::string& d = sep->as_string();
  if (d.empty()) fail("ValueError: empty separator");
  std::vector<std::string> pieces;
  if (!from_right) {
    size_t start = 0;
    for (size_t hit = s.find(d); hit != std::string::npos && (maxsplit < 0 || static_cast<int64_t>(pieces.size()) < maxsplit);
         hit = s.find(d, start)) {
      pieces.push_back(s.substr(start, hit - start));
      start = hit + d.size();
    }
    pieces.push_back(s.substr(start));
  } else {
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(pieces.size()) < maxsplit) {
      if (end < d.size()) break;
      const size_t hit = s.rfind(d, end - d.size());
      if (hit == std::string::npos) break;
      pieces.push_back(s.substr(hit + d.size(), end - hit - d.size()));
      end = hit;
    }
    pieces.push_back(s.substr(0, end));
    std::reverse(pieces.begin(), pieces.end());
  }
  for (auto& p : pieces) parts.emplace_back(std::move(p));
  return Value::list(std::move(parts));
}

bool affix_matches(const std::string& s, const Value& affix, bool prefix, const std::string& function) {
  auto one = [&](const Value& a) {
    if (!a.is_string()) fail("TypeError: {} first arg must be str or a tuple of str, not {}", function, type_name(a));
    const std::string& x = a.as_string();
    return prefix ? std::string_view(s).starts_with(x) : std::string_view(s).ends_with(x);
  };
  if (affix.is_sequence() && affix.as_sequence().kind == SeqKind::kTuple) {
    for (const Value& a : affix.as_sequence().items) {
      if (one(a)) return true;
    }
    return false;
  }
  return one(affix);
}

std::string title_case(const std::string& s, bool capitalize_only) {
  if (!is_ascii(s)) fail("{}() of non-ASCII text is not supported", capitalize_only ? "capitalize" : "title");
  std::string out = s;
  bool previous_cased = false;
  for (size_t i = 0; i < out.size(); ++i) {
    const auto c = static_cast<unsigned char>(out[i]);
    const bool upper = capitalize_only ? i == 0 : !previous_cased;
    out[i] = static_cast<char>(upper ? std::toupper(c) : std::tolower(c));
    previous_cased = std::isalpha(c) != 0;
  }
  return out;
}

int64_t find_in(const std::string& s, const std::string& sub, bool from_right) {
  const size_t hit = from_right ? s.rfind(sub) : s.find(sub);
  if (hit == std::string::npos) return -1;
  return static_cast<int64_t>(utf8::count_code_points(std::string_view(s).substr(0, hit)));
}

Value string_method(const std::string& s, const std::string& name, CallArgs& a) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    a.expect(1, {"chars"});
    return py_strip(s, a.get(0, "chars"), name != "rstrip", name != "lstrip");
  }
  if (name == "split" || name == "rsplit") {
    a.expect(2, {"sep", "maxsplit"});
    return split(s, a.get(0, "sep"), int_arg(a, 1, "maxsplit", -1), name == "rsplit");
  }
  if (name == "startswith" || name == "endswith") {
    a.expect(1, {});
    const Value* affix = a.get(0, "prefix");
    if (affix == nullptr) fail("TypeError: {}() takes at least 1 argument (0 given)", name);
    return affix_matches(s, *affix, name == "startswith", name);
  }
  if (name == "lower" || name == "upper") {
    a.expect(0, {});
    return name == "lower" ? ascii_lower(s, "lower()") : ascii_upper(s, "upper()");
  }
  if (name == "title" || name == "capitalize") {
    a.expect(0, {});
    return title_case(s, name == "capitalize");
  }
  if (name == "replace") {
    a.expect(3, {});
    const std::string& old = string_arg(a, 0, "old");
    const std::string& repl = string_arg(a, 1, "new");
    int64_t count = int_arg(a, 2, "count", -1);
    std::string out;
    if (old.empty()) {  // Python inserts `repl` between every character and at both ends
      const std::u32string cps = code_points(s);
      for (size_t i = 0; i <= cps.size(); ++i) {
        if (count < 0 || static_cast<int64_t>(i) < count) out += repl;
        if (i < cps.size()) utf8::append(out, cps[i]);
      }
      return out;
    }
    size_t start = 0;
    for (size_t hit = s.find(old); hit != std::string::npos && count != 0; hit = s.find(old, start), --count) {
      out.append(s, start, hit - start).append(repl);
      start = hit + old.size();
    }
    return out + s.substr(start);
  }
  if (name == "find" || name == "rfind") {
    a.expect(1, {});
    return find_in(s, string_arg(a, 0, "sub"), name == "rfind");
  }
  if (name == "count") {
    a.expect(1, {});
    const std::string& sub = string_arg(a, 0, "sub");
    if (sub.empty()) return static_cast<int64_t>(utf8::count_code_points(s) + 1);
    int64_t n = 0;
    for (size_t hit = s.find(sub); hit != std::string::npos; hit = s.find(sub, hit + sub.size())) ++n;
    return n;
  }
  if (name == "join") {
    a.expect(1, {});
    const Value* items = a.get(0, "iterable");
    if (items == nullptr) fail("TypeError: join() takes exactly one argument (0 given)");
    std::string out;
    bool first = true;
    for (const Value& v : iterate(*items)) {
      if (!v.is_string()) fail("TypeError: sequence item: expected str instance, {} found", type_name(v));
      if (!first) out += s;
      out += v.as_string();
      first = false;
    }
    return out;
  }
  fail("'str' object has no attribute '{}'", name);
}

Value dict_method(const Value& d, const std::string& name, CallArgs& a) {
  if (name == "get") {
    a.expect(2, {});
    const Value* key = a.get(0, "key");
    if (key == nullptr) fail("TypeError: get expected at least 1 argument, got 0");
    const Value* found = d.as_dict().find(*key);
    if (found != nullptr) return *found;
    const Value* fallback = a.get(1, "default");
    return fallback != nullptr ? *fallback : Value(None{});
  }
  a.expect(0, {});
  std::vector<Value> items;
  for (const auto& [k, v] : d.as_dict().entries) {
    if (name == "keys") items.push_back(k);
    if (name == "values") items.push_back(v);
    if (name == "items") items.push_back(Value::list({k, v}, SeqKind::kTuple));
  }
  return Value::list(std::move(items), name == "keys"   ? SeqKind::kDictKeys
                                       : name == "values" ? SeqKind::kDictValues
                                                          : SeqKind::kDictItems);
}

Value list_method(const Value& l, const std::string& name, CallArgs& a) {
  a.expect(1, {});
  const Value* x = a.get(0, "value");
  if (x == nullptr) fail("TypeError: {}() takes exactly one argument (0 given)", name);
  const auto& items = l.as_sequence().items;
  int64_t count = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!equals(items[i], *x)) continue;
    if (name == "index") return static_cast<int64_t>(i);
    ++count;
  }
  if (name == "index") fail("ValueError: {} is not in list", repr(*x));
  return count;
}

bool is_string_method(const std::string& n) {
  static constexpr std::string_view kNames[] = {"strip", "lstrip", "rstrip", "split", "rsplit", "startswith",
                                                "endswith", "lower", "upper", "title", "capitalize", "replace",
                                                "find", "rfind", "count", "join"};
  return std::find(std::begin(kNames), std::end(kNames), n) != std::end(kNames);
}

Value bound(const Value& receiver, const std::string& name, Value (*method)(const Value&, const std::string&, CallArgs&)) {
  return Value::function(name, [receiver, name, method](CallArgs& a) { return method(receiver, name, a); });
}

Value undefined_attribute(const Value& obj, const std::string& name) {
  return Undefined{fmt::format("'{} object' has no attribute '{}'", type_name(obj), name)};
}

// Python's slice index adjustment (PySlice_AdjustIndices); returns the item indices.
std::vector<int64_t> slice_indices(int64_t length, const Value& start_v, const Value& stop_v, const Value& step_v) {
  auto as_index = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    if (!v.is_int() && !v.is_bool()) fail("TypeError: slice {} must be an integer or None", what);
    return v.as_integer();
  };
  const int64_t step = as_index(step_v, "step").value_or(1);
  if (step == 0) fail("ValueError: slice step cannot be zero");
  auto adjust = [&](std::optional<int64_t> v, int64_t if_none) {
    if (!v) return if_none;
    int64_t x = *v;
    if (x < 0) {
      x += length;
      if (x < 0) x = step < 0 ? -1 : 0;
    } else if (x >= length) {
      x = step < 0 ? length - 1 : length;
    }
    return x;
  };
  const int64_t start = adjust(as_index(start_v, "start"), step < 0 ? length - 1 : 0);
  const int64_t stop = adjust(as_index(stop_v, "stop"), step < 0 ? -1 : length);
  std::vector<int64_t> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(i);
  return out;
}

}  // namespace

std::string ascii_lower(const std::string& s, std::string_view what) {
  if (!is_ascii(s)) fail("{} of non-ASCII text is not supported", what);
  std::string out = s;
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string ascii_upper(const std::string& s, std::string_view what) {
  if (!is_ascii(s)) fail("{} of non-ASCII text is not supported", what);
  std::string out = s;
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string py_strip(const std::string& s, const Value* chars, bool left, bool right) {
  std::u32string set;
  const bool whitespace = chars == nullptr || chars->is_none();
  if (!whitespace) {
    if (!chars->is_string()) fail("TypeError: strip arg must be None or str");
    set = code_points(chars->as_string());
  }
  const std::u32string cps = code_points(s);
  auto strip_it = [&](char32_t c) { return whitespace ? unicode::is_python_space(c) : set.find(c) != std::u32string::npos; };
  size_t a = 0;
  size_t b = cps.size();
  while (left && a < b && strip_it(cps[a])) ++a;
  while (right && b > a && strip_it(cps[b - 1])) --b;
  return to_utf8(std::u32string_view(cps).substr(a, b - a));
}

Value get_attribute(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (name.starts_with('_')) return undefined_attribute(obj, name);  // the sandbox hides these
  if (obj.is_string()) {
    if (is_string_method(name)) {
      return bound(obj, name, [](const Value& r, const std::string& n, CallArgs& a) { return string_method(r.as_string(), n, a); });
    }
    return undefined_attribute(obj, name);
  }
  if (obj.is_dict()) {
    if (name == "get" || name == "items" || name == "keys" || name == "values") return bound(obj, name, dict_method);
    const Value* v = obj.as_dict().find(Value(name));
    return v != nullptr ? *v : undefined_attribute(obj, name);
  }
  if (obj.is_namespace()) {
    const Value* v = obj.as_namespace().find(name);
    return v != nullptr ? *v : undefined_attribute(obj, name);
  }
  if (obj.is_sequence() && (obj.as_sequence().kind == SeqKind::kList || obj.as_sequence().kind == SeqKind::kTuple) &&
      (name == "count" || name == "index")) {
    return bound(obj, name, list_method);
  }
  return undefined_attribute(obj, name);
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_dict()) {
    if (const Value* v = obj.as_dict().find(key)) return *v;
  } else if ((key.is_int() || key.is_bool()) && (obj.is_string() || obj.is_sequence())) {
    const bool indexable = obj.is_string() || obj.as_sequence().kind == SeqKind::kList ||
                           obj.as_sequence().kind == SeqKind::kTuple || obj.as_sequence().kind == SeqKind::kRange;
    if (indexable) {
      std::vector<Value> chars;
      const std::vector<Value>& items = obj.is_string() ? (chars = iterate(obj)) : obj.as_sequence().items;
      int64_t i = key.as_integer();
      if (i < 0) i += static_cast<int64_t>(items.size());
      if (i >= 0 && i < static_cast<int64_t>(items.size())) return items[static_cast<size_t>(i)];
      return Undefined{fmt::format("{} object has no element {}", type_name(obj), key.as_integer())};
    }
  }
  if (key.is_string()) return get_attribute(obj, key.as_string());
  return Undefined{fmt::format("{} object has no element {}", type_name(obj), repr(key))};
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_string()) {
    const std::u32string cps = code_points(obj.as_string());
    std::u32string out;
    for (const int64_t i : slice_indices(static_cast<int64_t>(cps.size()), start, stop, step)) out += cps[static_cast<size_t>(i)];
    return to_utf8(out);
  }
  if (obj.is_sequence() && obj.as_sequence().kind != SeqKind::kGenerator && obj.as_sequence().kind != SeqKind::kDictKeys &&
      obj.as_sequence().kind != SeqKind::kDictValues && obj.as_sequence().kind != SeqKind::kDictItems) {
    const auto& items = obj.as_sequence().items;
    std::vector<Value> out;
    for (const int64_t i : slice_indices(static_cast<int64_t>(items.size()), start, stop, step)) out.push_back(items[static_cast<size_t>(i)]);
    return Value::list(std::move(out), obj.as_sequence().kind == SeqKind::kTuple ? SeqKind::kTuple : SeqKind::kList);
  }
  fail("TypeError: '{}' object is not subscriptable", type_name(obj));
}

Value global_function(const std::string& name) {
  if (name == "range") {
    return Value::function(name, [](CallArgs& a) {
      a.expect(3, {});
      if (a.positional.empty()) fail("TypeError: range expected at least 1 argument, got 0");
      int64_t start = 0, stop = 0, step = 1;
      if (a.positional.size() == 1) {
        stop = int_arg(a, 0, "stop", 0);
      } else {
        start = int_arg(a, 0, "start", 0);
        stop = int_arg(a, 1, "stop", 0);
        step = int_arg(a, 2, "step", 1);
      }
      if (step == 0) fail("ValueError: range() arg 3 must not be zero");
      auto seq = std::make_shared<Sequence>();
      seq->kind = SeqKind::kRange;
      seq->range_start = start;
      seq->range_stop = stop;
      seq->range_step = step;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (seq->items.size() >= 100000) fail("OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
        seq->items.emplace_back(i);
      }
      return Value(std::shared_ptr<const Sequence>(std::move(seq)));
    });
  }
  if (name == "dict") {
    return Value::function(name, [](CallArgs& a) {
      if (!a.positional.empty()) fail("TypeError: dict() with positional arguments is not supported");
      std::vector<std::pair<Value, Value>> entries;
      for (auto& [k, v] : a.keyword) entries.emplace_back(Value(k), v);
      return Value::dict(std::move(entries));
    });
  }
  if (name == "namespace") {
    return Value::function(name, [](CallArgs& a) {
      if (a.positional.size() > 1) fail("TypeError: namespace() takes at most one positional argument");
      auto ns = std::make_shared<Namespace>();
      if (!a.positional.empty()) {
        if (!a.positional[0].is_dict()) fail("TypeError: namespace() takes a dict as its positional argument");
        for (const auto& [k, v] : a.positional[0].as_dict().entries) ns->set(to_str(k), v);
      }
      for (auto& [k, v] : a.keyword) ns->set(k, v);
      return Value(std::move(ns));
    });
  }
  if (name == "raise_exception") {
    return Value::function(name, [](CallArgs& a) -> Value {
      a.expect(1, {});
      throw TemplateError("raise_exception: " + (a.positional.empty() ? std::string() : to_str(a.positional[0])));
    });
  }
  if (name == "strftime_now") {
    return Value::function(name, [](CallArgs& a) {
      a.expect(1, {});
      const std::string& format = string_arg(a, 0, "format");
      const std::time_t now = std::time(nullptr);
      std::tm local{};
      localtime_r(&now, &local);
      char buf[512];
      const size_t n = std::strftime(buf, sizeof(buf), format.c_str(), &local);
      return Value(std::string(buf, n));
    });
  }
  return Undefined{fmt::format("'{}' is undefined", name)};
}

}  // namespace mlaserve::tokenizer::jinja
