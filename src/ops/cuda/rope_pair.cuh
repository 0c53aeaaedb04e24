// One interleaved RoPE pair on the GPU: its angle from the table and its rotation, rope.cu's
// arithmetic and rounding. Every kernel that rotates a pair takes them from here, so that they
// give the RoPE op's bits: the op itself (rope.cu), latent_rows (the rope key, latent_rows.cu) and
// the fused absorbed attention (the query, mla_absorbed_sm90.cuh).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace mlaserve::ops::gpu {

// Pair `pair`'s cos and sin at a position; in_table false (and no read) outside [0, P).
struct RopeAngle {
  bool in_table = false;
  float cos = 0.0f, sin = 0.0f;
};

// cos_sin [P, 2 pairs]: the cos of a position's `pairs` angles, then their sin.
__device__ __forceinline__ RopeAngle rope_angle(const float* cos_sin, int64_t num_positions, int64_t pairs,
                                                int64_t pos, int64_t pair) {
  RopeAngle a;
  a.in_table = pos >= 0 && pos < num_positions;
  if (a.in_table) {
    const float* cs = cos_sin + pos * 2 * pairs;
    a.cos = cs[pair];
    a.sin = cs[pairs + pair];
  }
  return a;
}

// (x0, x1) rotated by the angle in fp32, each rounded once to bf16; zeros outside the table.
__device__ __forceinline__ __nv_bfloat162 rope_rotate(float x0, float x1, const RopeAngle& a) {
  const float out0 = a.in_table ? x0 * a.cos - x1 * a.sin : 0.0f;
  const float out1 = a.in_table ? x0 * a.sin + x1 * a.cos : 0.0f;
  return __floats2bfloat162_rn(out0, out1);
}

}  // namespace mlaserve::ops::gpu
