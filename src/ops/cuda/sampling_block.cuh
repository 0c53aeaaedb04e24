// Block-wide reductions shared by the sampling kernels (sampling.cu, sampling_filtered.cuh):
// one CTA of kThreads threads per logits row; warp shuffles, then the kWarps warp results
// through shared memory, always combined in the same order (deterministic).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace mlaserve::ops::sampling_gpu {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;

// The sampling rank order: larger value first, then lower id (a total order on NaN-free rows).
__device__ __forceinline__ bool ranks_before(float v1, int32_t i1, float v2, int32_t i2) {
  return v1 > v2 || (v1 == v2 && i1 < i2);
}

// Calls f(i, x[i]) for the tokens i of a row x [v] that this thread owns. With x 16-byte
// aligned: 16-byte loads of 4 consecutive tokens, kLoads of them issued before any is used (a
// CTA walks a 500 KB row alone at small batches: the loads in flight set its speed), then the
// last v % 4 tokens one by one. Otherwise one token per thread per step.
template <typename F>
__device__ __forceinline__ void for_each_token(const float* x, int32_t v, F f) {
  constexpr int kLoads = 4;
  if (reinterpret_cast<uintptr_t>(x) % 16 != 0) {
    for (int32_t i = threadIdx.x; i < v; i += kThreads) f(i, x[i]);
    return;
  }
  const auto* x4 = reinterpret_cast<const float4*>(x);
  const int32_t v4 = v / 4;
  int32_t j = threadIdx.x;
  for (; j + (kLoads - 1) * kThreads < v4; j += kLoads * kThreads) {
    float4 q[kLoads];
#pragma unroll
    for (int l = 0; l < kLoads; ++l) q[l] = x4[j + l * kThreads];
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      const int32_t i = 4 * (j + l * kThreads);
      f(i, q[l].x), f(i + 1, q[l].y), f(i + 2, q[l].z), f(i + 3, q[l].w);
    }
  }
  for (; j < v4; j += kThreads) {
    const float4 q = x4[j];
    f(4 * j, q.x), f(4 * j + 1, q.y), f(4 * j + 2, q.z), f(4 * j + 3, q.w);
  }
  for (int32_t i = 4 * v4 + threadIdx.x; i < v; i += kThreads) f(i, x[i]);
}

// Reduces (value, id) over the CTA with ranks_before; thread 0 gets the winner's id and value.
__device__ inline void block_best(float& v, int32_t& id, float* values, int32_t* ids) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int32_t oid = __shfl_xor_sync(0xffffffffu, id, o);
    if (ranks_before(ov, oid, v, id)) v = ov, id = oid;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) values[warp] = v, ids[warp] = id;
  __syncthreads();
  if (warp == 0) {
    v = lane < kWarps ? values[lane] : -INFINITY;
    id = lane < kWarps ? ids[lane] : INT32_MAX;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, v, o);
      const int32_t oid = __shfl_xor_sync(0xffffffffu, id, o);
      if (ranks_before(ov, oid, v, id)) v = ov, id = oid;
    }
  }
  __syncthreads();  // values/ids may be reused
}

// Reduces v over the CTA with op; every thread gets the result.
template <typename T, typename Op>
__device__ T block_reduce(T v, T* scratch, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = scratch[0];
  for (int w = 1; w < kWarps; ++w) r = op(r, scratch[w]);
  __syncthreads();  // scratch may be reused
  return r;
}

// Exclusive prefix sum of v over the threads of the CTA (thread order); every thread also gets
// the total.
template <typename T>
__device__ T block_exclusive_sum(T v, T* scratch, T& total) {  // T: int or double
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  T inclusive = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const T n = __shfl_up_sync(0xffffffffu, inclusive, o);
    if (lane >= o) inclusive += n;
  }
  T exclusive = __shfl_up_sync(0xffffffffu, inclusive, 1);
  if (lane == 0) exclusive = 0;
  if (lane == 31) scratch[warp] = inclusive;
  __syncthreads();
  T before = 0;
  total = 0;
  for (int w = 0; w < kWarps; ++w) {
    if (w < warp) before += scratch[w];
    total += scratch[w];
  }
  __syncthreads();  // scratch may be reused
  return before + exclusive;
}

}  // namespace mlaserve::ops::sampling_gpu
