#include "server/request_fields.h"

#include <cmath>

#include <fmt/format.h>

#include "core/json_nesting.h"
#include "server/api_error.h"

namespace mlaserve::server {
namespace {

const char* type_name(const Json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number_float()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

[[noreturn]] void wrong_type(const char* name, const char* expected, const Json& v) {
  throw invalid_request(fmt::format("'{}' must be {}, got {}", name, expected, type_name(v)), name);
}

// The integer value of v, or fails (floats and integers past int64 too).
int64_t as_int(const Json& v, const char* name, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) wrong_type(name, "an integer", v);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    throw invalid_request(fmt::format("'{}' must be in [{}, {}], got {}", name, lo, hi, v.dump()), name);
  }
  const auto x = v.get<int64_t>();
  if (x < lo || x > hi) throw invalid_request(fmt::format("'{}' must be in [{}, {}], got {}", name, lo, hi, x), name);
  return x;
}

}  // namespace

Json parse_json_object(std::string_view body) {
  auto refuse_deep = [](int depth, Json::parse_event_t event, Json& /*parsed*/) {
    if (opens_past_nesting_limit(depth, event)) {
      throw invalid_request(fmt::format("the request body nests arrays and objects deeper than {} levels", kMaxJsonNesting));
    }
    return true;
  };
  Json j;
  try {
    j = Json::parse(body.begin(), body.end(), refuse_deep);
  } catch (const nlohmann::json::exception& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 2: ..." (or
    // out_of_range.406 "number overflow parsing '1e999'", which is not a parse_error)
    std::string what = e.what();
    const size_t pos = what.find("] ");
    throw invalid_request("the request body is not valid JSON: " + (pos == std::string::npos ? what : what.substr(pos + 2)));
  }
  if (!j.is_object()) throw invalid_request(fmt::format("the request body must be a JSON object, got {}", type_name(j)));
  return j;
}

const Json* field(const Json& obj, const char* name) {
  auto it = obj.find(name);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

std::optional<bool> get_bool(const Json& obj, const char* name) {
  const Json* v = field(obj, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) wrong_type(name, "a boolean", *v);
  return v->get<bool>();
}

std::optional<std::string> get_string(const Json& obj, const char* name) {
  const Json* v = field(obj, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) wrong_type(name, "a string", *v);
  return v->get<std::string>();
}

std::optional<int64_t> get_int(const Json& obj, const char* name, int64_t lo, int64_t hi) {
  const Json* v = field(obj, name);
  if (v == nullptr) return std::nullopt;
  return as_int(*v, name, lo, hi);
}

std::optional<double> get_number(const Json& obj, const char* name, double lo, double hi) {
  const Json* v = field(obj, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) wrong_type(name, "a number", *v);
  const auto x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) {
    throw invalid_request(fmt::format("'{}' must be in [{}, {}], got {}", name, lo, hi, v->dump()), name);
  }
  return x;
}

std::optional<std::vector<std::string>> get_string_or_strings(const Json& obj, const char* name, size_t max_count) {
  const Json* v = field(obj, name);
  if (v == nullptr) return std::nullopt;
  std::vector<std::string> out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const Json& s : *v) {
      if (!s.is_string()) wrong_type(name, "a string or an array of strings", *v);
      out.push_back(s.get<std::string>());
    }
  } else {
    wrong_type(name, "a string or an array of strings", *v);
  }
  if (out.size() > max_count) {
    throw invalid_request(fmt::format("'{}' holds {} strings; at most {} are allowed", name, out.size(), max_count), name);
  }
  return out;
}

std::optional<std::vector<int64_t>> get_int_array(const Json& obj, const char* name, int64_t lo, int64_t hi) {
  const Json* v = field(obj, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_array()) wrong_type(name, "an array of integers", *v);
  std::vector<int64_t> out;
  out.reserve(v->size());
  for (const Json& x : *v) out.push_back(as_int(x, name, lo, hi));
  return out;
}

}  // namespace mlaserve::server
