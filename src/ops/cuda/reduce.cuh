// Warp and CTA reductions of one float per thread, shared by the kernels that normalise or
// reduce rows (rms_norm, latent_rows, the GEMVs, paged MHA decode).
#pragma once

namespace mlaserve::ops::gpu {

// Every lane of the (full) warp gets the sum / the max of the 32 values.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the CTA of `warps` full warps (at most 32); every thread gets the total. `scratch`
// holds one float per warp. The caller syncs before reusing scratch.
__device__ inline float block_sum(float v, float* scratch, int warps) {
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.0f;
  return warp_sum(v);
}

// The same over the whole CTA (blockDim.x a multiple of 32).
__device__ inline float block_sum(float v, float* scratch) { return block_sum(v, scratch, blockDim.x / 32); }

// The GEMVs' epilogue: acc[r][j] of every lane of the CTA's kWarps warps summed, lanes first
// (warp_sum) and then warps in order 0 .. kWarps - 1. Thread i < kRows·kT receives the sum for
// row i / kT and token i % kT in `sum` and returns true; the other threads return false. Every
// thread of the CTA must call it (it syncs the CTA).
template <int kWarps, int kRows, int kT>
__device__ __forceinline__ bool gemv_cta_sum(const float (&acc)[kRows][kT], float& sum) {
  __shared__ float partial[kWarps][kRows * kT];
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int j = 0; j < kT; ++j) {
      const float v = warp_sum(acc[r][j]);
      if (lane == 0) partial[warp][r * kT + j] = v;
    }
  }
  __syncthreads();
  if (threadIdx.x >= kRows * kT) return false;
  sum = 0.0f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) sum += partial[w][threadIdx.x];
  return true;
}

}  // namespace mlaserve::ops::gpu
