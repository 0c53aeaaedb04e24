#include "core/memory.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"

#ifdef MLASERVE_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace mlaserve {

const char* device_name(Device device) { return device == Device::kCPU ? "cpu" : "cuda"; }

Buffer::Buffer(Device device, size_t bytes) : device_(device), bytes_(bytes) {
  if (bytes == 0) return;
  if (device == Device::kCPU) {
    size_t rounded = (bytes + 63) / 64 * 64;
    data_ = std::aligned_alloc(64, rounded);
    MLA_CHECK(data_ != nullptr, "host allocation of {} bytes failed", bytes);
    return;
  }
#ifdef MLASERVE_WITH_CUDA
  MLA_CUDA_CHECK(cudaMalloc(&data_, bytes));
#else
  MLA_FAIL("a GPU buffer of {} bytes was requested, but this build has no CUDA backend", bytes);
#endif
}

Buffer::~Buffer() {
  if (data_ == nullptr) return;
  if (device_ == Device::kCPU) {
    std::free(data_);
    return;
  }
#ifdef MLASERVE_WITH_CUDA
  cudaFree(data_);  // no throw from a destructor; a failure here means the context is gone
#endif
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::kCPU && src_device == Device::kCPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
#ifdef MLASERVE_WITH_CUDA
  MLA_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
#else
  MLA_FAIL("copy between {} and {} needs the CUDA backend", device_name(src_device),
           device_name(dst_device));
#endif
}

bool cuda_available() {
#ifdef MLASERVE_WITH_CUDA
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
#else
  return false;
#endif
}

}  // namespace mlaserve
