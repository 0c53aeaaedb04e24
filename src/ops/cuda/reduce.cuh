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

}  // namespace mlaserve::ops::gpu
