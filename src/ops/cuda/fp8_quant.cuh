// The activation quantiser's arithmetic (ops/fp8_quant.h), shared by the kernels that quantise:
// fp8_quant.cu (a pass of its own) and linear_fp8_gemv.cuh (inside the GEMV). One formula, so that
// both are bit-identical to quantize_activations_fp8_cpu on the same fp32 inputs.
#pragma once

#include <cuda_fp8.h>

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
// conversion (finite values beyond ±448 and infinities become ±448, NaN stays NaN).
__device__ __forceinline__ __nv_fp8_storage_t fp8_act_quantize(float v, float scale) {
  return __nv_cvt_float_to_fp8(__fdiv_rn(v, scale), __NV_SATFINITE, __NV_E4M3);
}

}  // namespace mlaserve::ops::gpu
