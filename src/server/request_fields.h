// Typed reads of an API request's JSON fields. Each takes the request object and a field name
// and fails with a 400 ApiError naming the field when the value has the wrong type or is out
// of range. A field that is absent or null reads as "not given" (the OpenAI SDK sends null
// for unset optional fields in some versions).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlaserve::server {

using Json = nlohmann::ordered_json;  // keys keep their order (chat templates iterate them)

// The body as a JSON object (400 for malformed JSON, invalid UTF-8, nesting deeper than
// kMaxJsonNesting (core/json_nesting.h), or a non-object).
Json parse_json_object(std::string_view body);

// nullptr when the field is absent or null.
const Json* field(const Json& obj, const char* name);

std::optional<bool> get_bool(const Json& obj, const char* name);
std::optional<std::string> get_string(const Json& obj, const char* name);
// An integer in [lo, hi]; a float, even 3.0, is a wrong type.
std::optional<int64_t> get_int(const Json& obj, const char* name, int64_t lo, int64_t hi);
// A finite number (integer or float) in [lo, hi].
std::optional<double> get_number(const Json& obj, const char* name, double lo, double hi);
// A string or an array of strings (stop: "x" or ["x", "y"]); at most max_count of them.
std::optional<std::vector<std::string>> get_string_or_strings(const Json& obj, const char* name, size_t max_count);
// An array of integers, each in [lo, hi].
std::optional<std::vector<int64_t>> get_int_array(const Json& obj, const char* name, int64_t lo, int64_t hi);

}  // namespace mlaserve::server
