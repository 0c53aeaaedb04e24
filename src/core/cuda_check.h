// CUDA, cuBLAS and NCCL error checks: each failure throws mlaserve::Error with file:line, the
// call that failed and the library's own error string.
#pragma once

#include <cuda_runtime_api.h>

#include "core/error.h"

#define MLA_CUDA_CHECK(call)                                                               \
  do {                                                                                     \
    cudaError_t mla_err_ = (call);                                                         \
    if (mla_err_ != cudaSuccess) [[unlikely]] {                                            \
      MLA_FAIL("CUDA error {} ({}) in {}", cudaGetErrorName(mla_err_),                     \
               cudaGetErrorString(mla_err_), #call);                                       \
    }                                                                                      \
  } while (0)

// After a kernel launch: catches launch-configuration errors without synchronising.
#define MLA_CUDA_CHECK_LAUNCH() MLA_CUDA_CHECK(cudaGetLastError())

#define MLA_CUBLAS_CHECK(call)                                                             \
  do {                                                                                     \
    int mla_status_ = static_cast<int>(call);                                              \
    if (mla_status_ != 0) [[unlikely]] {                                                   \
      MLA_FAIL("cuBLAS error {} in {}", mla_status_, #call);                               \
    }                                                                                      \
  } while (0)

#define MLA_NCCL_CHECK(call)                                                               \
  do {                                                                                     \
    ncclResult_t mla_res_ = (call);                                                        \
    if (mla_res_ != ncclSuccess) [[unlikely]] {                                            \
      MLA_FAIL("NCCL error {} ({}) in {}", static_cast<int>(mla_res_),                     \
               ncclGetErrorString(mla_res_), #call);                                       \
    }                                                                                      \
  } while (0)
