// The current GPU's properties that launch code sizes grids by. Host-only; src/ops/cuda only.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <atomic>

#include "core/cuda_check.h"
#include "core/error.h"

namespace mlaserve::ops::gpu {

// Streaming multiprocessors of the current device (132 on an H100 SXM or H200). Asked of the
// driver once per device and kept: launch code calls this on every launch (decode-sized GEMVs,
// schedules), where the attribute query would be repeated host work.
inline int device_sm_count() {
  constexpr int kMaxDevices = 64;
  static std::array<std::atomic<int>, kMaxDevices> counts{};  // 0: not asked yet
  int device = 0;
  MLA_CUDA_CHECK(cudaGetDevice(&device));
  MLA_CHECK(device >= 0 && device < kMaxDevices, "device_sm_count: device {} past {}", device, kMaxDevices);
  int count = counts[static_cast<size_t>(device)].load(std::memory_order_relaxed);
  if (count == 0) {
    MLA_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
    counts[static_cast<size_t>(device)].store(count, std::memory_order_relaxed);
  }
  return count;
}

}  // namespace mlaserve::ops::gpu
