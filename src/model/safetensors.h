// Safetensors reader: single files and sharded checkpoints (model.safetensors.index.json).
//
// File format: u64 little-endian header length N, then N bytes of JSON
//   {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}
// then the data section; offsets are relative to the start of the data section.
//
// Files are memory-mapped read-only; tensors are zero-copy views that keep the mapping alive
// (writing through a view faults). A tensor whose bytes are not aligned to its element size
// (only a writer that does not pad the header makes one) comes back as an aligned copy.
// Everything is validated before use, and every error names the file and the tensor:
// header length against the file size (and a 100 MB limit), well-formed JSON, known dtypes,
// each tensor's byte range inside the data section, overlapping ranges (gaps are allowed),
// shape x dtype size equal to the byte range, duplicate keys (within a file, at any depth, and
// tensors across shards), and an index that disagrees with its shards in any way.
//
// Implementation: safetensors_header.cc (header validation), safetensors_file.cc (mapping and
// views), checkpoint.cc (directories and the index), safetensors_writer.cc.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mlaserve {

struct TensorInfo {
  std::string name;
  DType dtype;
  Shape shape;
  size_t begin = 0;  // byte offsets in the data section
  size_t end = 0;
  std::string file;  // path of the file that holds it
};

class SafetensorsFile {
 public:
  // Maps and validates one file. Throws mlaserve::Error on any problem.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // A zero-copy host view; the tensor keeps this file mapped.
  Tensor get(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_section_ = nullptr;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  std::weak_ptr<SafetensorsFile> self_;
};

// A checkpoint directory: either model.safetensors.index.json with its shards (the index's
// weight_map and the shards must agree exactly; files it does not name are ignored), or every
// *.safetensors file in the directory (a single file is the common case).
class Checkpoint {
 public:
  static Checkpoint open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  Tensor get(const std::string& name) const;  // throws naming the tensor if absent
  std::vector<std::string> names() const;     // sorted

 private:
  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index into files_
};

// Writes tensors (host, contiguous) to one safetensors file, byte for byte as the Python
// library does (see safetensors_writer.cc). For tests and tools.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace mlaserve
