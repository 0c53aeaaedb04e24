// Hands the idle blocks of the caching GPU allocator (core/memory.h) back to the driver.
//
// Freed GPU buffers stay cached for reuse, so cudaMemGetInfo does not count them as free. Call
// this once loading is done (its temporaries: the BF16 weights that FP8 quantisation replaced,
// for instance) and before anything is sized from free memory (the KV cache,
// kv/cache_sizing.h). It synchronises the device; private pools (CUDA graphs) keep their blocks;
// without CUDA it does nothing.
#pragma once

#include <cstdint>

namespace mlaserve {

void release_idle_device_memory();

// What the caching allocator has done since the process started: a step that misses the cache
// calls cudaMalloc, and one that finds the device full gives every idle block back (cudaFree,
// which synchronises the device) before trying again.
struct DeviceCacheStats {
  int64_t mallocs = 0;           // cudaMalloc calls
  int64_t releases = 0;          // times the idle blocks went back to the driver
  double host_ms = 0;            // host time inside cudaMalloc and those releases
  int64_t cached_bytes = 0;      // idle blocks held now (the shared cache and the pools)
  int64_t used_bytes = 0;        // blocks handed out now
};
DeviceCacheStats device_cache_stats();

}  // namespace mlaserve
