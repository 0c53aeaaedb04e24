#include "model/safetensors_header.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "model/json_fields.h"

namespace mlaserve {
namespace {

// A JSON value shown in a message, cut short: a hostile header can hold megabytes in one field.
std::string shown(const nlohmann::json& value) {
  constexpr size_t kMaxShown = 60;
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return text.size() > kMaxShown ? text.substr(0, kMaxShown) + "..." : text;
}

// A non-negative JSON integer that fits int64 (shape entries and offsets alike).
bool to_size(const nlohmann::json& value, uint64_t* out) {
  if (!value.is_number_unsigned()) return false;
  *out = value.get<uint64_t>();
  return *out <= static_cast<uint64_t>(INT64_MAX);
}

class EntryParser {
 public:
  EntryParser(const std::string& path, const std::string& name, size_t data_size)
      : path_(path), name_(name), data_size_(data_size) {}

  TensorInfo parse(const nlohmann::json& entry) const {
    if (!entry.is_object()) fail(fmt::format("entry must be an object, got {}", json_describe(entry)));
    TensorInfo info;
    info.name = name_;
    info.file = path_;
    info.dtype = parse_dtype_field(member(entry, "dtype"));
    info.shape = parse_shape(member(entry, "shape"));
    parse_offsets(member(entry, "data_offsets"), &info);

    uint64_t bytes = dtype_size(info.dtype);
    for (int64_t d : info.shape) {
      if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes)) {
        fail(fmt::format("shape {} is too large", shape_str(info.shape)));
      }
    }
    if (bytes != info.end - info.begin) {
      fail(fmt::format("shape {} of {} needs {} bytes, but data_offsets [{}, {}] span {}",
                       shape_str(info.shape), dtype_name(info.dtype), bytes, info.begin, info.end,
                       info.end - info.begin));
    }
    return info;
  }

 private:
  [[noreturn]] void fail(const std::string& message) const {
    MLA_FAIL("{}: tensor '{}': {}", path_, name_, message);
  }

  const nlohmann::json& member(const nlohmann::json& entry, const char* key) const {
    auto it = entry.find(key);
    if (it == entry.end()) fail(fmt::format("missing '{}'", key));
    return *it;
  }

  DType parse_dtype_field(const nlohmann::json& value) const {
    if (!value.is_string()) fail(fmt::format("dtype must be a string, got {}", json_describe(value)));
    DType dtype;
    if (!parse_dtype(value.get<std::string>(), &dtype)) {
      fail(fmt::format("unsupported dtype {} (supported: BF16, F16, F32, F8_E4M3, I64, I32, U8, BOOL)",
                       shown(value)));
    }
    return dtype;
  }

  Shape parse_shape(const nlohmann::json& value) const {
    if (!value.is_array()) fail(fmt::format("shape must be a list, got {}", json_describe(value)));
    Shape shape;
    for (const auto& d : value) {
      uint64_t dim = 0;
      if (!to_size(d, &dim))
        fail(fmt::format("shape must be a list of non-negative integers, got {}", shown(value)));
      shape.push_back(static_cast<int64_t>(dim));
    }
    return shape;
  }

  void parse_offsets(const nlohmann::json& value, TensorInfo* info) const {
    uint64_t begin = 0;
    uint64_t end = 0;
    if (!value.is_array() || value.size() != 2 || !to_size(value[0], &begin) || !to_size(value[1], &end)) {
      fail(fmt::format("data_offsets must be [begin, end] with non-negative integers, got {}", shown(value)));
    }
    if (begin > end) fail(fmt::format("data_offsets [{}, {}] begin past their end", begin, end));
    if (end > data_size_) {
      fail(fmt::format("data_offsets [{}, {}] run past the end of the data section ({} bytes)", begin, end,
                       data_size_));
    }
    info->begin = begin;
    info->end = end;
  }

  const std::string& path_;
  const std::string& name_;
  size_t data_size_;
};

std::map<std::string, std::string> parse_metadata(const nlohmann::json& value, const std::string& path) {
  if (!value.is_object()) {
    MLA_FAIL("{}: {} must be an object of strings, got {}", path, kSafetensorsMetadataKey,
             json_describe(value));
  }
  std::map<std::string, std::string> metadata;
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      MLA_FAIL("{}: {} must map strings to strings, but '{}' is {}", path, kSafetensorsMetadataKey, key,
               json_describe(item));
    }
    metadata.emplace(key, item.get<std::string>());
  }
  return metadata;
}

// Ranges may leave gaps (nothing requires a writer to pack them), but never share a byte.
void check_overlaps(const std::map<std::string, TensorInfo>& tensors, const std::string& path) {
  std::vector<const TensorInfo*> by_offset;
  for (const auto& [name, info] : tensors) {
    if (info.end > info.begin) by_offset.push_back(&info);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& prev = *by_offset[i - 1];
    const TensorInfo& next = *by_offset[i];
    if (next.begin < prev.end) {
      MLA_FAIL("{}: tensor '{}' [{}, {}) overlaps tensor '{}' [{}, {})", path, next.name, next.begin,
               next.end, prev.name, prev.begin, prev.end);
    }
  }
}

}  // namespace

SafetensorsHeader parse_safetensors_header(std::string_view json, size_t data_size, const std::string& path) {
  nlohmann::json document = parse_json_strict(json, path);
  if (!document.is_object())
    MLA_FAIL("{}: header must be a JSON object, got {}", path, json_describe(document));
  SafetensorsHeader header;
  for (const auto& [name, entry] : document.items()) {
    if (name == kSafetensorsMetadataKey) {
      header.metadata = parse_metadata(entry, path);
    } else {
      header.tensors.emplace(name, EntryParser(path, name, data_size).parse(entry));
    }
  }
  check_overlaps(header.tensors, path);
  return header;
}

}  // namespace mlaserve
