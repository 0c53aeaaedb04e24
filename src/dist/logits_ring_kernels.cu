// The logits ring's two kernels (dist/logits_ring.h): the sender's flag store and rank 0's wait.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/cuda_check.h"

namespace mlaserve::dist {
namespace {

__global__ void store_flag(int64_t* flag, int64_t step) {
  asm volatile("st.release.sys.global.s64 [%0], %1;" ::"l"(flag), "l"(step) : "memory");
}

__global__ void wait_flag(const int64_t* flag, int64_t step, const volatile int32_t* abort_flag) {
  if (threadIdx.x != 0) return;
  while (true) {
    int64_t seen = 0;
    asm volatile("ld.acquire.sys.global.s64 %0, [%1];" : "=l"(seen) : "l"(flag) : "memory");
    if (seen >= step || *abort_flag != 0) return;
    __nanosleep(200);
  }
}

}  // namespace

void launch_store_flag(int64_t* flag, int64_t step, cudaStream_t stream) {
  store_flag<<<1, 1, 0, stream>>>(flag, step);
  MLA_CUDA_CHECK(cudaGetLastError());
}

void launch_wait_flag(const int64_t* flag, int64_t step, const int32_t* abort_flag, cudaStream_t stream) {
  wait_flag<<<1, 32, 0, stream>>>(flag, step, abort_flag);
  MLA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace mlaserve::dist
