// Typed access to the fields of a JSON document with errors that name the file and the field
// path ("tokenizer.json: model.merges[3]: expected a string"). Used at the file boundary only.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "core/error.h"
#include "core/json_nesting.h"

namespace mlaserve::tokenizer {

class JsonFields {
 public:
  explicit JsonFields(std::string file) : file_(std::move(file)) {}

  // Parses `text`, or throws naming the file and the parser's message (also for a number
  // out of range, such as 1e999, and for nesting past kMaxJsonNesting).
  nlohmann::json parse(std::string_view text) const {
    auto refuse_deep = [this](int depth, nlohmann::json::parse_event_t event, nlohmann::json& /*parsed*/) {
      if (opens_past_nesting_limit(depth, event)) {
        MLA_FAIL("{}: arrays and objects nest deeper than {} levels", file_, kMaxJsonNesting);
      }
      return true;
    };
    try {
      return nlohmann::json::parse(text.begin(), text.end(), refuse_deep);
    } catch (const nlohmann::json::exception& e) {
      MLA_FAIL("{}: not valid JSON: {}", file_, e.what());
    }
  }

  [[noreturn]] void fail(std::string_view path, std::string_view problem) const {
    MLA_FAIL("{}: {}: {}", file_, path, problem);
  }

  const nlohmann::json& member(const nlohmann::json& object, std::string_view path, const char* key) const {
    expect_object(object, path);
    const auto it = object.find(key);
    if (it == object.end()) fail(join(path, key), "missing");
    return *it;
  }

  // The member, or nullptr when absent or null.
  const nlohmann::json* optional_member(const nlohmann::json& object, std::string_view path, const char* key) const {
    expect_object(object, path);
    const auto it = object.find(key);
    return it == object.end() || it->is_null() ? nullptr : &*it;
  }

  bool boolean(const nlohmann::json& object, std::string_view path, const char* key, bool fallback) const {
    const nlohmann::json* v = optional_member(object, path, key);
    return v == nullptr ? fallback : as_boolean(*v, path, key);
  }

  bool required_boolean(const nlohmann::json& object, std::string_view path, const char* key) const {
    return as_boolean(member(object, path, key), path, key);
  }

  std::string string(const nlohmann::json& value, std::string_view path) const {
    if (!value.is_string()) fail(path, "expected a string");
    return value.get<std::string>();
  }

  void expect_object(const nlohmann::json& value, std::string_view path) const {
    if (!value.is_object()) fail(path.empty() ? "(top level)" : path, "expected an object");
  }
  void expect_array(const nlohmann::json& value, std::string_view path) const {
    if (!value.is_array()) fail(path, "expected an array");
  }

  static std::string join(std::string_view path, std::string_view key) {
    return path.empty() ? std::string(key) : std::string(path) + "." + std::string(key);
  }
  static std::string index(std::string_view path, size_t i) { return fmt::format("{}[{}]", path, i); }

 private:
  bool as_boolean(const nlohmann::json& v, std::string_view path, const char* key) const {
    if (!v.is_boolean()) fail(join(path, key), "expected true or false");
    return v.get<bool>();
  }

  std::string file_;
};

}  // namespace mlaserve::tokenizer
