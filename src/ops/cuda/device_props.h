// The current GPU's properties that launch code sizes grids by. Host-only; src/ops/cuda only.
#pragma once

#include <cuda_runtime_api.h>

#include "core/cuda_check.h"

namespace mlaserve::ops::gpu {

// Streaming multiprocessors of the current device (132 on an H100 SXM or H200).
inline int device_sm_count() {
  int device = 0, count = 0;
  MLA_CUDA_CHECK(cudaGetDevice(&device));
  MLA_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

}  // namespace mlaserve::ops::gpu
