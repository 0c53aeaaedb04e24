// write_safetensors: the same bytes the Python library (safetensors.numpy.save_file) writes.
//
// Layout: tensors sorted by element size, largest first, then by name, so every tensor starts
// aligned to its element size; the header lists __metadata__ first, then the tensors in data
// order, each as {"dtype", "shape", "data_offsets"}, compact, padded with spaces to a multiple
// of 8 bytes so the data section is 8-byte aligned.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/safetensors.h"
#include "model/safetensors_header.h"

namespace mlaserve {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

struct FileCloser {
  std::FILE* f;
  ~FileCloser() {
    if (f != nullptr) std::fclose(f);
  }
};

void check_inputs(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    if (name == kSafetensorsMetadataKey) MLA_FAIL("{}: '{}' cannot be a tensor name", path, name);
    if (!seen.insert(name).second) MLA_FAIL("{}: tensor '{}' is given twice", path, name);
    if (!tensor.defined()) MLA_FAIL("{}: tensor '{}' is undefined", path, name);
    if (!tensor.is_cpu())
      MLA_FAIL("{}: tensor '{}' is on {}, not the host", path, name, device_name(tensor.device()));
  }
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  check_inputs(path, tensors);
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    size_t size_a = dtype_size(tensors[a].second.dtype());
    size_t size_b = dtype_size(tensors[b].second.dtype());
    return size_a != size_b ? size_a > size_b : tensors[a].first < tensors[b].first;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[std::string(kSafetensorsMetadataKey)] = metadata;
  size_t offset = 0;
  for (size_t i : order) {
    const Tensor& t = tensors[i].second;
    nlohmann::ordered_json entry;
    entry["dtype"] = std::string(dtype_name(t.dtype()));
    entry["shape"] = t.shape();
    entry["data_offsets"] = {offset, offset + t.nbytes()};
    header[tensors[i].first] = std::move(entry);
    offset += t.nbytes();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    MLA_FAIL("{}: cannot encode the header (names and metadata must be UTF-8): {}", path, e.what());
  }
  text.append(
      (kSafetensorsHeaderAlignment - text.size() % kSafetensorsHeaderAlignment) % kSafetensorsHeaderAlignment,
      ' ');

  FileCloser file{std::fopen(path.c_str(), "wb")};
  if (file.f == nullptr) MLA_FAIL("{}: cannot create: {}", path, std::strerror(errno));
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  bool ok = std::fwrite(length, 1, 8, file.f) == 8 &&
            std::fwrite(text.data(), 1, text.size(), file.f) == text.size();
  for (size_t i : order) {
    const Tensor& t = tensors[i].second;
    if (ok && t.nbytes() > 0) ok = std::fwrite(t.raw(), 1, t.nbytes(), file.f) == t.nbytes();
  }
  std::FILE* f = std::exchange(file.f, nullptr);
  if (std::fclose(f) != 0) ok = false;
  if (!ok) MLA_FAIL("{}: write failed: {}", path, std::strerror(errno));
}

}  // namespace mlaserve
