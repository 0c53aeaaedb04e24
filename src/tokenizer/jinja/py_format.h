// Python's text forms of values, byte for byte: float repr (shortest round-trip digits,
// exponent form below 1e-4 and from 1e16), string repr (quote choice and escapes), and
// json.dumps with the options transformers' tojson filter exposes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mlaserve::tokenizer::jinja {

class Value;

std::string float_repr(double d);
std::string string_repr(std::string_view s);

struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // None: one line
  std::string item_separator = ", ";  // json.dumps defaults: ", " and ": ", or "," with indent
  std::string key_separator = ": ";
  bool sort_keys = false;
};

// json.dumps(value, ...). Throws for values JSON cannot hold (Undefined, namespace, function).
std::string json_dumps(const Value& v, const JsonOptions& options);

}  // namespace mlaserve::tokenizer::jinja
