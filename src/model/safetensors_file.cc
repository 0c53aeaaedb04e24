// SafetensorsFile: one file, memory-mapped read-only, its header validated before anything is
// handed out (safetensors_header.cc).
//
// Tensors are zero-copy views into the mapping that hold a shared_ptr to the file, so the
// mapping lives as long as any view. Views are read-only memory: writing through one faults.
// Writers align every tensor to its element size (the Python library sorts by dtype size and
// pads the header to 8 bytes); a tensor that is not aligned anyway is returned as an aligned
// copy, because reading a misaligned float is undefined behaviour.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "model/safetensors.h"
#include "model/safetensors_header.h"

namespace mlaserve {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian and is viewed in place");

struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) MLA_FAIL("{}: cannot open: {}", path, std::strerror(errno));
  FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) MLA_FAIL("{}: cannot stat: {}", path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) MLA_FAIL("{}: not a regular file", path);
  auto size = static_cast<size_t>(st.st_size);
  if (size < 8) MLA_FAIL("{}: file is {} bytes, shorter than the 8-byte header length", path, size);

  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED) MLA_FAIL("{}: mmap of {} bytes failed: {}", path, size, std::strerror(errno));
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());  // unmaps on any error below
  file->path_ = path;
  file->map_ = static_cast<const uint8_t*>(map);
  file->map_size_ = size;
  file->self_ = file;

  uint64_t header_bytes = read_u64_le(file->map_);
  if (header_bytes > size - 8) {
    MLA_FAIL("{}: header length {} runs past the end of the file ({} bytes)", path, header_bytes, size);
  }
  if (header_bytes > kSafetensorsMaxHeaderBytes) {
    MLA_FAIL("{}: header length {} exceeds the {}-byte limit", path, header_bytes,
             kSafetensorsMaxHeaderBytes);
  }
  std::string_view json(reinterpret_cast<const char*>(file->map_ + 8), header_bytes);
  SafetensorsHeader header = parse_safetensors_header(json, size - 8 - header_bytes, path);
  file->data_section_ = file->map_ + 8 + header_bytes;
  file->tensors_ = std::move(header.tensors);
  file->metadata_ = std::move(header.metadata);
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(const_cast<uint8_t*>(map_), map_size_);
}

Tensor SafetensorsFile::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) MLA_FAIL("{}: no tensor '{}'", path_, name);
  const TensorInfo& info = it->second;
  const uint8_t* data = data_section_ + info.begin;
  if (reinterpret_cast<uintptr_t>(data) % dtype_size(info.dtype) == 0) {
    return Tensor::view_of(const_cast<uint8_t*>(data), info.shape, info.dtype, Device::kCPU, self_.lock());
  }
  Tensor copy = Tensor::empty(info.shape, info.dtype);
  if (info.end > info.begin) std::memcpy(copy.raw(), data, info.end - info.begin);
  return copy;
}

}  // namespace mlaserve
