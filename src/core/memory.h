// Raw memory on the host or the GPU. A Buffer owns one allocation; Tensors share Buffers.
// Host allocations are 64-byte aligned. GPU allocations are plain device memory (cudaMalloc,
// never managed memory) kept in a caching allocator (memory.cc: a freed block is reused, since
// cudaFree would synchronise the device), and exist only in builds with MLASERVE_CUDA.
#pragma once

#include <cstddef>
#include <memory>

namespace mlaserve {

enum class Device : uint8_t { kCPU, kCUDA };

const char* device_name(Device device);

class Buffer {
 public:
  Buffer(Device device, size_t bytes);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  Device device_;
  size_t bytes_;
  void* data_ = nullptr;
};

// A private pool of GPU blocks, for CUDA graphs. While a DevicePoolScope is alive on a thread,
// that thread's GPU allocations come from its pool (new blocks are allocated into it) and go
// back to the pool when freed, wherever that happens; a pool's blocks are never handed to other
// allocations. The intermediate tensors of a captured graph live in its pool, so replaying the
// graph cannot overwrite memory that code outside it owns by then. Graphs that never run at
// the same time may share a pool. Pools live as long as the process.
struct DevicePool;
DevicePool* new_device_pool();

class DevicePoolScope {
 public:
  explicit DevicePoolScope(DevicePool* pool);
  ~DevicePoolScope();
  DevicePoolScope(const DevicePoolScope&) = delete;
  DevicePoolScope& operator=(const DevicePoolScope&) = delete;

 private:
  DevicePool* previous_ = nullptr;
};

// Copies bytes between any two devices (host<->host, host<->GPU, GPU<->GPU). Host to host and
// to or from the GPU: synchronous, the bytes in place on return (work queued next on any stream
// reads them). GPU to GPU: queued on the legacy default stream (after the blocking streams' work
// queued before it), not waited for.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);

// A strided copy of `rows` rows of `width` bytes: row i goes from src + i·src_pitch to
// dst + i·dst_pitch. Synchronous as copy_bytes is (column slices of weights at load).
void copy_bytes_2d(void* dst, size_t dst_pitch, Device dst_device, const void* src, size_t src_pitch,
                   Device src_device, size_t width, size_t rows);

// True when this build has the CUDA backend and a GPU is visible.
bool cuda_available();

}  // namespace mlaserve
