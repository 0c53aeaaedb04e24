#include "core/memory.h"
#include "core/device_cache.h"
#include "core/side_stream.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.h"

#ifdef MLASERVE_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace mlaserve {

#ifdef MLASERVE_WITH_CUDA
namespace {

thread_local std::vector<void*>* deferred_frees = nullptr;  // the innermost DeferFreesScope's

// Caching allocator for device memory. cudaFree synchronises the whole device, and a forward
// pass makes and drops hundreds of activation tensors, so freed blocks are kept and handed out
// again (best fit, at most twice the request) instead of being returned to the driver.
// Reuse is stream-ordered: the model queues its work on one stream, so work already queued on a
// block finishes before work queued by its next owner. Work on any other stream must be ordered
// against that stream before its blocks are freed: a forked branch's side stream joins first and
// its frees wait for the join (DeferFreesScope, core/side_stream.h); the pipeline's last stage
// frees a step's logits only behind a wait of the model's stream for their send on its logits
// stream (dist/distributed_runner.cc, LogitsSender); the sampler, off the model's stream,
// allocates from a pool of its own (engine/sampler.cc). Sizes are rounded up (512 B below
// 1 MiB, 2 MiB above) so that similar requests share blocks.
class DeviceCache {
 public:
  void* allocate(size_t bytes, DevicePool* pool) {
    const size_t size = round_up(bytes);
    {
      std::lock_guard lock(mutex_);
      FreeBlocks& free = free_list(pool);
      auto it = free.lower_bound(size);
      if (it != free.end() && it->first <= 2 * size) {
        void* p = it->second;
        used_[p] = {it->first, pool};
        free.erase(it);
        return p;
      }
    }
    const auto t0 = std::chrono::steady_clock::now();
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, size);
    const bool full = err == cudaErrorMemoryAllocation;
    if (full) {  // give the cached blocks back, then try once more
      (void)cudaGetLastError();
      release_cached();
      err = cudaMalloc(&p, size);
    }
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      (void)cudaMemGetInfo(&free_bytes, &total_bytes);
      MLA_FAIL("out of GPU memory: {:.2f} GiB asked, {:.2f} GiB of {:.2f} GiB free (a smaller model share, "
               "--gpu-memory-utilization, --max-num-batched-tokens or --max-num-seqs)",
               static_cast<double>(size) / (1 << 30), static_cast<double>(free_bytes) / (1 << 30),
               static_cast<double>(total_bytes) / (1 << 30));
    }
    MLA_CUDA_CHECK(err);
    std::lock_guard lock(mutex_);
    used_[p] = {size, pool};
    ++stats_.mallocs;
    stats_.releases += full ? 1 : 0;
    stats_.host_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return p;
  }

  void free(void* p) {
    if (deferred_frees != nullptr) {  // a DeferFreesScope holds it until the branches have joined
      deferred_frees->push_back(p);
      return;
    }
    std::lock_guard lock(mutex_);
    auto it = used_.find(p);
    if (it == used_.end()) return;
    free_list(it->second.pool).emplace(it->second.size, p);
    used_.erase(it);
  }

  // Frees the shared cache's idle blocks (never a pool's: a captured graph may use them).
  void release_cached() {
    std::lock_guard lock(mutex_);
    for (auto& [size, p] : free_) cudaFree(p);
    free_.clear();
  }

  DeviceCacheStats stats() {
    std::lock_guard lock(mutex_);
    DeviceCacheStats s = stats_;
    for (const auto& [size, p] : free_) s.cached_bytes += static_cast<int64_t>(size);
    for (const auto& [pool, blocks] : pools_) {
      for (const auto& [size, p] : blocks) s.cached_bytes += static_cast<int64_t>(size);
    }
    for (const auto& [p, u] : used_) s.used_bytes += static_cast<int64_t>(u.size);
    return s;
  }

 private:
  using FreeBlocks = std::multimap<size_t, void*>;  // idle blocks by size
  struct Used {
    size_t size;
    DevicePool* pool;  // nullptr: the shared cache
  };

  static size_t round_up(size_t bytes) {
    const size_t unit = bytes < (size_t{1} << 20) ? 512 : (size_t{2} << 20);
    return (bytes + unit - 1) / unit * unit;
  }
  FreeBlocks& free_list(DevicePool* pool) { return pool == nullptr ? free_ : pools_[pool]; }

  std::mutex mutex_;
  FreeBlocks free_;
  std::unordered_map<DevicePool*, FreeBlocks> pools_;
  std::unordered_map<void*, Used> used_;
  DeviceCacheStats stats_;  // counts and host time; the byte totals are summed by stats()
};

thread_local DevicePool* current_pool = nullptr;

DeviceCache& device_cache() {
  static DeviceCache* cache = new DeviceCache();  // never destroyed: outlives static tensors
  return *cache;
}

}  // namespace
#endif

struct DevicePool {};

DevicePool* new_device_pool() { return new DevicePool(); }  // lives as long as the process

DevicePoolScope::DevicePoolScope(DevicePool* pool) {
#ifdef MLASERVE_WITH_CUDA
  previous_ = current_pool;
  current_pool = pool;
#else
  (void)pool;
#endif
}

DevicePoolScope::~DevicePoolScope() {
#ifdef MLASERVE_WITH_CUDA
  current_pool = previous_;
#endif
}

DeferFreesScope::DeferFreesScope() {
#ifdef MLASERVE_WITH_CUDA
  previous_ = deferred_frees;
  auto* held = new std::vector<void*>();
  held_ = held;
  deferred_frees = held;
#endif
}

DeferFreesScope::~DeferFreesScope() {
#ifdef MLASERVE_WITH_CUDA
  auto* held = static_cast<std::vector<void*>*>(held_);
  deferred_frees = static_cast<std::vector<void*>*>(previous_);
  for (void* p : *held) device_cache().free(p);  // to the enclosing scope, if any, else the cache
  delete held;
#endif
}

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
  data_ = device_cache().allocate(bytes, current_pool);
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
  device_cache().free(data_);
#endif
}

#ifdef MLASERVE_WITH_CUDA
namespace {

// cudaMemcpy from pageable host memory to the GPU returns once the bytes are staged, with their
// DMA still queued on the legacy default stream, which a non-blocking stream does not wait for:
// a kernel queued next on such a stream could read the old bytes (the likely cause of a CUTLASS
// grouped GEMM test that wrote the wrong rows once, bench/NOTES-engine.md, fourteenth session).
// Waiting for that stream makes the copy host-synchronous, as copy_bytes promises (copies to the
// host already are; GPU-to-GPU copies stay queued on the legacy stream, not waited for); the
// stream was drained before the copy began, so the wait is the DMA alone.
void wait_for_host_to_device(Device dst_device, Device src_device) {
  if (dst_device == Device::kCUDA && src_device == Device::kCPU) {
    MLA_CUDA_CHECK(cudaStreamSynchronize(cudaStreamLegacy));
  }
}

}  // namespace
#endif

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::kCPU && src_device == Device::kCPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
#ifdef MLASERVE_WITH_CUDA
  MLA_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
  wait_for_host_to_device(dst_device, src_device);
#else
  MLA_FAIL("copy between {} and {} needs the CUDA backend", device_name(src_device),
           device_name(dst_device));
#endif
}

void copy_bytes_2d(void* dst, size_t dst_pitch, Device dst_device, const void* src, size_t src_pitch,
                   Device src_device, size_t width, size_t rows) {
  if (width == 0 || rows == 0) return;
  if (dst_device == Device::kCPU && src_device == Device::kCPU) {
    for (size_t i = 0; i < rows; ++i) {
      std::memcpy(static_cast<char*>(dst) + i * dst_pitch, static_cast<const char*>(src) + i * src_pitch, width);
    }
    return;
  }
#ifdef MLASERVE_WITH_CUDA
  MLA_CUDA_CHECK(cudaMemcpy2D(dst, dst_pitch, src, src_pitch, width, rows, cudaMemcpyDefault));
  wait_for_host_to_device(dst_device, src_device);
#else
  MLA_FAIL("copy between {} and {} needs the CUDA backend", device_name(src_device), device_name(dst_device));
#endif
}

void release_idle_device_memory() {
#ifdef MLASERVE_WITH_CUDA
  device_cache().release_cached();
#endif
}

DeviceCacheStats device_cache_stats() {
#ifdef MLASERVE_WITH_CUDA
  return device_cache().stats();
#else
  return {};
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
