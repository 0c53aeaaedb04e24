// The activation quantiser's arithmetic (ops/fp8_quant.h), shared by the kernels that quantise:
// fp8_quant.cu (a pass of its own), linear_fp8_gemv.cuh, gemv_mma.cuh and linear_fp8_gemv_mma.cuh
// (inside the GEMVs). One formula, so that all are bit-identical to quantize_activations_fp8_cpu on
// the same fp32 inputs.
#pragma once

#include <cuda_fp8.h>

#include <cstdint>

#include "ops/cuda/div_rn.cuh"

namespace mlaserve::ops::gpu {

// The scale of a group whose amax (already max'ed with the floor) is `amax`: amax / 448 by IEEE
// division, or with UE8M0 that rounded up to a power of two.
__device__ __forceinline__ float fp8_act_scale(float amax, bool ue8m0) {
  float scale = __fdiv_rn(amax, 448.0f);
  if (ue8m0) {
    int exponent = 0;
    const float mantissa = frexpf(scale, &exponent);
    scale = mantissa == 0.5f ? scale : ldexpf(1.0f, exponent);
  }
  return scale;
}

// e4m3(v / scale): IEEE division, then the hardware's round-to-nearest-even saturating
// conversion (finite values beyond ±448 and infinities become ±448, NaN stays NaN). Zeros are
// common here (lanes past K, the idle tasks of a CTA's last round: ncu of the experts' GEMV at one
// token, 2026-12-01, had half its warps run the division's slow path 8 times each while the other
// half waited at the barrier), so they skip the division (div_rn.cuh).
__device__ __forceinline__ __nv_fp8_storage_t fp8_act_quantize(float v, float scale) {
  return __nv_cvt_float_to_fp8(div_rn_skip_zero(v, scale), __NV_SATFINITE, __NV_E4M3);
}

// fp8_act_quantize for the many values of one group, with the division's reciprocal computed once
// (fp8_act_reciprocal) and no branch a value: the same bits. __fdiv_rn runs an inline sequence,
// the approximate reciprocal refined by one Newton step, the product and one fma correction,
// which is correctly rounded wherever its range check (FCHK) lets it run, and a called slow path
// otherwise; both the check and the branch around every division serialise a thread's
// divisions. fp8_act_quantize_by runs that sequence, with the reciprocal hoisted, for operands
// of normal size ([2^-64, 2^64], well inside the check's range; fp8_act_in_fast_range);
// quantize_e4m3 below divides as fp8_act_quantize does where any value is outside.
__device__ __forceinline__ float fp8_act_reciprocal(float scale) {
  float r0;
  asm("rcp.approx.ftz.f32 %0, %1;\n" : "=f"(r0) : "f"(scale));
  return fmaf(r0, fmaf(-scale, r0, 1.0f), r0);
}
__device__ __forceinline__ bool fp8_act_in_fast_range(float v) {
  const float a = fabsf(v);
  return a == 0.0f || (a >= 0x1p-64f && a <= 0x1p64f);
}
__device__ __forceinline__ __nv_fp8_storage_t fp8_act_quantize_by(float v, float scale, float reciprocal) {
  const float q0 = fmaf(reciprocal, v, 0.0f);
  const float q = fmaf(reciprocal, fmaf(-q0, scale, v), q0);
  return __nv_cvt_float_to_fp8(v == 0.0f ? v : q, __NV_SATFINITE, __NV_E4M3);  // ±0 keeps its sign
}

// kValues values of one group as e4m3 codes (code i in the low byte of codes[i]), the bits of
// fp8_act_quantize: by fp8_act_quantize_by where the scale and every value are in its range,
// else by the division itself.
template <int kValues>
__device__ __forceinline__ void quantize_e4m3(const float (&v)[kValues], float scale, uint32_t (&codes)[kValues]) {
  bool fast = fp8_act_in_fast_range(scale);
#pragma unroll
  for (int i = 0; i < kValues; ++i) fast = fast && fp8_act_in_fast_range(v[i]);
  if (fast) {
    const float r = fp8_act_reciprocal(scale);
#pragma unroll
    for (int i = 0; i < kValues; ++i) codes[i] = fp8_act_quantize_by(v[i], scale, r);
  } else {
#pragma unroll
    for (int i = 0; i < kValues; ++i) codes[i] = fp8_act_quantize(v[i], scale);
  }
}

// The scale of a 128-channel group spread over kLanes lanes of a warp (a power of two, the lanes
// aligned to it), each holding kValues of the group's values: the amax over the lane's values,
// then over the lanes by shuffles, max'ed with the floor first (fmaxf skips NaN, as the CPU
// quantiser's std::max does). Every lane of the warp calls it and gets its group's scale.
template <int kLanes, int kValues>
__device__ __forceinline__ float group_act_scale(const float (&v)[kValues], float amax_floor, bool ue8m0) {
  float amax = amax_floor;
#pragma unroll
  for (int i = 0; i < kValues; ++i) amax = fmaxf(amax, fabsf(v[i]));
#pragma unroll
  for (int d = 1; d < kLanes; d <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, d));
  return fp8_act_scale(amax, ue8m0);
}

// The SwiGLU value silu(g)·u = g / (1 + e^-g) · u of the quantisers that take an MLP's gate_up
// (silu_mul_quantize_fp8_cuda, the down projection's GEMV): IEEE division as the CPU reference,
// a zero g not divided (div_rn.cuh).
__device__ __forceinline__ float silu_mul_exact(float g, float u) { return div_rn_skip_zero(g, 1.0f + expf(-g)) * u; }

// Eight values as e4m3 codes (quantize_e4m3: fp8_act_quantize's bits), value i in byte i of the
// two words.
__device__ __forceinline__ uint2 quantize_e4m3x8(const float (&v)[8], float scale) {
  uint32_t codes[8];
  quantize_e4m3(v, scale, codes);
  return make_uint2(codes[0] | codes[1] << 8 | codes[2] << 16 | codes[3] << 24,
                    codes[4] | codes[5] << 8 | codes[6] << 16 | codes[7] << 24);
}

}  // namespace mlaserve::ops::gpu
