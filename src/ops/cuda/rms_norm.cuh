// The row norm's device steps shared by rms_norm.cu's kernel and moe_combine_add_rms_norm_kernel
// (moe_combine_norm.cuh), which promises rms_norm's bits: the norm weight's load, the row's
// 1 / rms from the threads' sums of squares, and the scaled output. The CTA shape and the order
// of the sums: rms_norm_heuristics.h.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/reduce.cuh"
#include "ops/cuda/vec.cuh"

namespace mlaserve::ops::gpu {

// Elements i .. i + kVec - 1 of the norm weight ([d] bf16 or f32) as fp32.
template <int kVec>
__device__ __forceinline__ void load_norm_weight(const void* weight, bool weight_bf16, int64_t i, float (&w)[kVec]) {
  if (weight_bf16) {
    load_vec<kVec>(static_cast<const __nv_bfloat16*>(weight) + i, w);
  } else {
    load_vec<kVec>(static_cast<const float*>(weight) + i, w);
  }
}

// 1 / rms of a row of d elements from each thread's fp32 sum of squares: block_sum (every thread
// of the CTA calls it; scratch holds a float a warp), then 1 / sqrt(total / d + eps).
__device__ __forceinline__ float row_inv_rms(float sum_sq, float* scratch, int64_t d, float eps) {
  const float total = block_sum(sum_sq, scratch);
  return 1.0f / sqrtf(total / static_cast<float>(d) + eps);
}

// v = w · (v · inv_rms), element by element (the caller rounds v once when it stores it).
template <int kVec>
__device__ __forceinline__ void scale_by_norm(float (&v)[kVec], const float (&w)[kVec], float inv_rms) {
#pragma unroll
  for (int i = 0; i < kVec; ++i) v[i] = w[i] * (v[i] * inv_rms);
}

}  // namespace mlaserve::ops::gpu
