// silu(g) · u = g / (1 + e^-g) · u in the fused SwiGLU epilogues of the grouped GEMMs and the
// experts' GEMV, which store bf16: the fast exponential and the fast division (__fdividef: two
// instructions where IEEE division takes a call with a slow path). Their error (a few ulp of
// fp32) lies far below bf16's half ulp. Where 1 + e^-g exceeds 2^126 (g < -87) __fdividef gives
// 0 for g·e^g (|value| < 1e-36); NaN and infinities come out as IEEE division gives them.
// The quantisers before an MLP's down projection divide exactly instead (fp8_quant.cuh,
// silu_mul_exact), as the CPU reference does.
#pragma once

namespace mlaserve::ops::gpu {

__device__ __forceinline__ float swiglu(float g, float u) { return __fdividef(g, 1.0f + __expf(-g)) * u; }

}  // namespace mlaserve::ops::gpu
