// Strict JSON at the file boundary: parsing that rejects what Python's json module would
// silently accept differently, and typed member access whose errors name the file and field.
//
// parse_json_strict rejects invalid JSON (nlohmann's message, with the byte position) and
// duplicate keys at any depth. nlohmann, like Python, keeps only one of two equal keys; for a
// safetensors header that would hide a second tensor, so a duplicate is always an error. It
// also rejects nesting past kMaxJsonNesting (core/json_nesting.h; a safetensors shape of
// 200,000 brackets overflowed the stack of the dump that showed it in a message).
//
// JsonFields wraps one JSON object. A member that is absent or null reads as "not given"
// (std::nullopt); a member of the wrong JSON type throws mlaserve::Error naming the dotted
// field path, e.g. "config.json: field 'rope_scaling.factor' must be a number, got string".
// Nothing from nlohmann escapes: every nlohmann exception becomes an mlaserve::Error here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace mlaserve {

// Parses `text`; `source` (a path) prefixes every message.
nlohmann::json parse_json_strict(std::string_view text, std::string_view source);

// Reads a whole file into a string; throws naming the path if it cannot.
std::string read_text_file(const std::string& path);

class JsonFields {
 public:
  // `object` must be a JSON object and must outlive this. `prefix` is the dotted path of the
  // object inside the document ("" for the root); `source` is the file it came from.
  JsonFields(const nlohmann::json& object, std::string source, std::string prefix = "");

  const std::string& source() const { return source_; }
  const nlohmann::json& value() const { return *object_; }
  // The dotted path of a member: "rope_scaling.factor".
  std::string path(std::string_view key) const;

  // The member, or nullptr when it is absent or null.
  const nlohmann::json* find(std::string_view key) const;
  bool is_null(std::string_view key) const;  // present with the value null

  // Typed reads; std::nullopt when absent or null, Error on a wrong type.
  // Integers accept integral floats (2048.0) and reject 2048.5, booleans and out-of-range values.
  std::optional<int64_t> get_int(std::string_view key) const;
  // Numbers accept integers (factor: 40 reads as 40.0); non-finite values are rejected.
  std::optional<double> get_number(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  // A nested object, or std::nullopt when absent or null.
  std::optional<JsonFields> get_object(std::string_view key) const;

  // Throws "<source>: field '<path>' <message>".
  [[noreturn]] void fail(std::string_view key, std::string_view message) const;

 private:
  const nlohmann::json* object_;
  std::string source_;
  std::string prefix_;
};

// Converts one JSON value to int64 under the rules of JsonFields::get_int; false if it is not
// an integer in range.
bool json_to_int64(const nlohmann::json& value, int64_t* out);

// "string \"abc\"", "number 2.5", "array", "object", "boolean true", "null": for messages.
std::string json_describe(const nlohmann::json& value);

}  // namespace mlaserve
