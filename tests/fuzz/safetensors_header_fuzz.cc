// Fuzz target: the header of a safetensors file (a checkpoint is untrusted input).
// Input: 2 bytes, the data section's size (little-endian, so that offsets can fit it), then
// the header's JSON text. The parser must either throw mlaserve::Error or return a header
// whose every tensor is a valid view of the data section: its range inside it, its size that
// of shape x dtype, no two ranges sharing a byte.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "model/safetensors_header.h"

namespace {

void check_views(const mlaserve::SafetensorsHeader& header, size_t data_size) {
  std::vector<std::pair<size_t, size_t>> ranges;
  for (const auto& [name, info] : header.tensors) {
    if (info.begin > info.end || info.end > data_size) std::abort();
    uint64_t bytes = mlaserve::dtype_size(info.dtype);
    for (int64_t d : info.shape) {
      if (d < 0 || __builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes)) std::abort();
    }
    if (bytes != info.end - info.begin) std::abort();
    if (info.end > info.begin) ranges.emplace_back(info.begin, info.end);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t data_size = data[0] | static_cast<size_t>(data[1]) << 8;
  const std::string_view json(reinterpret_cast<const char*>(data + 2), size - 2);
  try {
    check_views(mlaserve::parse_safetensors_header(json, data_size, "fuzz.safetensors"), data_size);
  } catch (const mlaserve::Error&) {
  }
  return 0;
}
