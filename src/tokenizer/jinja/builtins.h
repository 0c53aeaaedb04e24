// What a template can call: jinja2's filters and tests that chat templates use, attribute
// and item access with jinja2's fallbacks, Python's str/dict/list methods, and the globals
// transformers provides. Each follows the Python behaviour of jinja2 3.1 as transformers
// configures it; an argument form that is not implemented is an error naming it.
//
// Filters: abs capitalize count d default e escape first float int items join last length
//   list lower map reject rejectattr replace reverse safe select selectattr sort string sum
//   tojson (transformers' version: json.dumps, no HTML escaping) trim unique upper.
// Tests: boolean callable defined divisibleby eq equalto escaped even false filter float ge
//   gt in integer iterable le lower lt mapping ne none number odd sameas sequence string
//   true undefined upper, and == != < <= > >=.
// Globals: range, dict, namespace, raise_exception, strftime_now.
// Methods: str: strip lstrip rstrip split rsplit startswith endswith lower upper title
//   capitalize replace find rfind count join; dict: get items keys values; list: count index.
// Case mappings (lower, upper, title, capitalize) work on ASCII text; non-ASCII input is an
// error rather than a guess at Python's full Unicode case rules.
#pragma once

#include <string>
#include <string_view>

#include "tokenizer/jinja/value.h"

namespace mlaserve::tokenizer::jinja {

bool has_filter(std::string_view name);
bool has_test(std::string_view name);
Value call_filter(const std::string& name, const Value& input, CallArgs& args);
bool call_test(const std::string& name, const Value& input, CallArgs& args);

// Python's `item in container` (substring for strings, key for dicts).
bool value_in(const Value& item, const Value& container);

// obj.name: a method, a dict key or namespace attribute, or Undefined.
Value get_attribute(const Value& obj, const std::string& name);
// obj[key]: item access (negative indices count from the end), falling back to get_attribute
// for string keys; Undefined when missing.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] on strings and sequences.
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// The global function `name`, or Undefined.
Value global_function(const std::string& name);

// ASCII case mappings shared by filters and methods.
std::string ascii_lower(const std::string& s, std::string_view what);
std::string ascii_upper(const std::string& s, std::string_view what);
// Python's str.strip/lstrip/rstrip; `chars` null strips Python whitespace.
std::string py_strip(const std::string& s, const Value* chars, bool left, bool right);

}  // namespace mlaserve::tokenizer::jinja
