// The current GPU's properties that launch code sizes grids by. Host-only; src/ops/cuda only.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

#include "core/cuda_check.h"
#include "core/error.h"

namespace mlaserve::ops::gpu {

inline constexpr int kMaxDevices = 64;  // devices a process may use, for the per-device caches

// One int per device that launch code would otherwise ask the driver for on every launch: each
// cache is a function-local `static PerDeviceInts`, filled by cached_per_device.
using PerDeviceInts = std::array<std::atomic<int>, kMaxDevices>;  // value + 1; 0: not asked yet

// cache's value for `device`: ask(device) the first time (a value >= 0), then the kept one.
template <class Ask>
int cached_per_device(PerDeviceInts& cache, int device, std::string_view what, Ask&& ask) {
  MLA_CHECK(device >= 0 && device < kMaxDevices, "{}: device {} past {}", what, device, kMaxDevices);
  std::atomic<int>& slot = cache[static_cast<size_t>(device)];
  int stored = slot.load(std::memory_order_acquire);
  if (stored == 0) {
    stored = 1 + ask(device);
    slot.store(stored, std::memory_order_release);
  }
  return stored - 1;
}

inline int current_device() {
  int device = 0;
  MLA_CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

// The current device's `attribute`, asked of the driver once per device and kept in `cache`.
inline int cached_device_attribute(PerDeviceInts& cache, cudaDeviceAttr attribute, std::string_view what) {
  return cached_per_device(cache, current_device(), what, [attribute](int device) {
    int value = 0;
    MLA_CUDA_CHECK(cudaDeviceGetAttribute(&value, attribute, device));
    return value;
  });
}

// Streaming multiprocessors of the current device (132 on an H100 SXM or H200). Asked of the
// driver once per device and kept: launch code calls this on every launch (decode-sized GEMVs,
// schedules), where the attribute query would be repeated host work.
inline int device_sm_count() {
  static PerDeviceInts counts{};
  return cached_device_attribute(counts, cudaDevAttrMultiProcessorCount, "device_sm_count");
}

// Peak HBM bandwidth of the current device in GB/s, from its memory clock and bus width (double
// data rate): 3,352 on an H100 SXM (2,619 MHz x 5,120 bits), ~4,900 on an H200 (6,144 bits). 0
// where the driver reports no clock. Asked once per device and kept.
inline int device_hbm_gbps() {
  static PerDeviceInts gbps{};
  return cached_per_device(gbps, current_device(), "device_hbm_gbps", [](int device) {
    int clock_khz = 0, bus_bits = 0;
    MLA_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device));
    MLA_CUDA_CHECK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device));
    return static_cast<int>(int64_t{clock_khz} * bus_bits * 2 / 8 / 1'000'000);
  });
}

// L2 cache of the current device in bytes, as the driver reports it (50 MB on an H100 SXM). Asked
// once per device and kept.
inline int device_l2_bytes() {
  static PerDeviceInts bytes{};
  return cached_device_attribute(bytes, cudaDevAttrL2CacheSize, "device_l2_bytes");
}

}  // namespace mlaserve::ops::gpu
