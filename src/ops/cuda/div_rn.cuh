// IEEE division of a dividend that is often zero, for the kernels whose results must equal their
// CPU references' a / b bit for bit.
//
// div.rn.f32 (a / b in device code without fast math, __fdiv_rn) runs a short inline sequence and
// sends a zero dividend, among its special cases, down a called slow path of ~60 instructions,
// which a warp then runs for every lane. Zeros are common where lanes idle (past K, past the last
// group, past top-k) or values underflow: the quantisers' idle lanes ran it in every CTA of the
// GEMVs at one token, the SwiGLU quantiser's idle warps 16 times each in a chain, and the router's
// lanes past top-k once a MoE layer on a decode step's serial path (bench/NOTES-fp8-gemm.md,
// thirty-seventh session; bench/NOTES-engine.md, thirty-eighth).
#pragma once

namespace mlaserve::ops::gpu {

// a / b, rounded to nearest, for b positive and finite: a zero a is returned as it is (±0 / b = ±0,
// the same bits) and divides 1 instead.
__device__ __forceinline__ float div_rn_skip_zero(float a, float b) {
  const bool zero = a == 0.0f;
  const float q = __fdiv_rn(zero ? 1.0f : a, b);
  return zero ? a : q;
}

}  // namespace mlaserve::ops::gpu
