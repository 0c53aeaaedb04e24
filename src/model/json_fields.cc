#include "model/json_fields.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "core/json_nesting.h"

namespace mlaserve {

namespace {

// nlohmann's messages quote the offending input, which may be invalid UTF-8 or control bytes;
// an error message must stay printable (and encodable as JSON by the server).
std::string printable(std::string_view text) {
  std::string out;
  for (char ch : text) {
    auto byte = static_cast<unsigned char>(ch);
    if (byte < 0x20 || byte >= 0x7f) {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace

nlohmann::json parse_json_strict(std::string_view text, std::string_view source) {
  // One frame per open object: its name (the key it sits under), the keys seen so far, and the
  // last key. The first duplicate is reported after parsing, with the object that holds it.
  struct Frame {
    std::string name;
    std::set<std::string> keys;
    std::string last_key;
  };
  std::vector<Frame> open_objects;
  std::optional<std::string> duplicate;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (opens_past_nesting_limit(depth, event)) {
      MLA_FAIL("{}: arrays and objects nest deeper than {} levels", source, kMaxJsonNesting);
    }
    switch (event) {
      case nlohmann::json::parse_event_t::object_start:
        open_objects.push_back({open_objects.empty() ? "" : open_objects.back().last_key, {}, {}});
        break;
      case nlohmann::json::parse_event_t::object_end: open_objects.pop_back(); break;
      case nlohmann::json::parse_event_t::key: {
        Frame& frame = open_objects.back();
        frame.last_key = parsed.get<std::string>();
        if (!frame.keys.insert(frame.last_key).second && !duplicate) {
          duplicate = frame.name.empty() ? fmt::format("'{}'", frame.last_key)
                                         : fmt::format("'{}' in object '{}'", frame.last_key, frame.name);
        }
        break;
      }
      default: break;
    }
    return true;
  };
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(text.begin(), text.end(), callback);
  } catch (const nlohmann::json::exception& e) {
    MLA_FAIL("{}: invalid JSON: {}", source, printable(e.what()));
  }
  if (duplicate) MLA_FAIL("{}: duplicate key {}", source, *duplicate);
  return value;
}

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) MLA_FAIL("{}: is a directory, expected a file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) MLA_FAIL("{}: cannot open: {}", path, std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) MLA_FAIL("{}: read error", path);
  return text.str();
}

bool json_to_int64(const nlohmann::json& value, int64_t* out) {
  if (value.is_number_unsigned()) {
    auto u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(u);
    return true;
  }
  if (value.is_number_integer()) {
    *out = value.get<int64_t>();
    return true;
  }
  if (value.is_number_float()) {
    double d = value.get<double>();
    constexpr double kExactLimit = 9007199254740992.0;  // 2^53: every integer below is exact
    if (!std::isfinite(d) || std::trunc(d) != d || std::fabs(d) > kExactLimit) return false;
    *out = static_cast<int64_t>(d);
    return true;
  }
  return false;
}

std::string json_describe(const nlohmann::json& value) {
  constexpr size_t kMaxShown = 40;
  switch (value.type()) {
    case nlohmann::json::value_t::string: {
      std::string shown = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      if (shown.size() > kMaxShown) shown = shown.substr(0, kMaxShown) + "...";
      return "string " + shown;
    }
    case nlohmann::json::value_t::boolean: return value.get<bool>() ? "boolean true" : "boolean false";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float: return "number " + value.dump();
    default: return value.type_name();
  }
}

JsonFields::JsonFields(const nlohmann::json& object, std::string source, std::string prefix)
    : object_(&object), source_(std::move(source)), prefix_(std::move(prefix)) {
  if (!object.is_object()) {
    if (prefix_.empty()) MLA_FAIL("{}: expected a JSON object, got {}", source_, json_describe(object));
    MLA_FAIL("{}: field '{}' must be an object, got {}", source_, prefix_, json_describe(object));
  }
}

std::string JsonFields::path(std::string_view key) const {
  return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
}

const nlohmann::json* JsonFields::find(std::string_view key) const {
  auto it = object_->find(key);
  if (it == object_->end() || it->is_null()) return nullptr;
  return &*it;
}

bool JsonFields::is_null(std::string_view key) const {
  auto it = object_->find(key);
  return it != object_->end() && it->is_null();
}

void JsonFields::fail(std::string_view key, std::string_view message) const {
  MLA_FAIL("{}: field '{}' {}", source_, path(key), message);
}

std::optional<int64_t> JsonFields::get_int(std::string_view key) const {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return std::nullopt;
  int64_t out = 0;
  if (!json_to_int64(*v, &out)) fail(key, "must be an integer, got " + json_describe(*v));
  return out;
}

std::optional<double> JsonFields::get_number(std::string_view key) const {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) fail(key, "must be a number, got " + json_describe(*v));
  double d = v->get<double>();
  if (!std::isfinite(d)) fail(key, "must be finite, got " + json_describe(*v));
  return d;
}

std::optional<bool> JsonFields::get_bool(std::string_view key) const {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) fail(key, "must be true or false, got " + json_describe(*v));
  return v->get<bool>();
}

std::optional<std::string> JsonFields::get_string(std::string_view key) const {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) fail(key, "must be a string, got " + json_describe(*v));
  return v->get<std::string>();
}

std::optional<JsonFields> JsonFields::get_object(std::string_view key) const {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_object()) fail(key, "must be an object, got " + json_describe(*v));
  return JsonFields(*v, source_, path(key));
}

}  // namespace mlaserve
