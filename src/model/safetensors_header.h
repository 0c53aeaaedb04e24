// The header of a safetensors file: parsing and validation of the JSON between the 8-byte
// length and the data section. Internal to the model layer (safetensors_file.cc and the
// writer share the format constants).
//
// Every check runs before any tensor is used, and every error names the file and, where there
// is one, the tensor: a non-object header, duplicate keys, a malformed entry (dtype, shape,
// data_offsets), a byte range outside the data section or not matching shape x dtype size,
// overlapping ranges, and a __metadata__ that is not string -> string.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "model/safetensors.h"

namespace mlaserve {

// The format's limits, as in the Python library: a header of at most 100 MB, and writers pad
// the header with spaces so that the data section starts 8-byte aligned.
inline constexpr size_t kSafetensorsMaxHeaderBytes = 100'000'000;
inline constexpr size_t kSafetensorsHeaderAlignment = 8;
inline constexpr std::string_view kSafetensorsMetadataKey = "__metadata__";

struct SafetensorsHeader {
  std::map<std::string, TensorInfo> tensors;  // TensorInfo::file is `path`
  std::map<std::string, std::string> metadata;
};

// `json`: the header text; `data_size`: the bytes after it; `path`: for messages.
SafetensorsHeader parse_safetensors_header(std::string_view json, size_t data_size, const std::string& path);

}  // namespace mlaserve
