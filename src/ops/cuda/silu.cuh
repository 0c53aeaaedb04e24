// The SwiGLU value of the kernels that take an MLP's gate_up rows and compute silu(gate)·up on
// the way (ops/silu_mul.h): the quantisers of an FP8 down projection's input (fp8_quant.cu,
// linear_fp8_gemv_mma.cuh) and the bf16 down projection's GEMV (linear_gemv.cuh).
#pragma once

#include "ops/cuda/div_rn.cuh"

namespace mlaserve::ops::gpu {

// silu(g)·u = g / (1 + e^-g) · u in fp32, expf and IEEE division, as silu_mul_cuda's kernel: the
// same bits, a zero g returned undivided (div_rn.cuh: the division's slow path skipped; g / 2 is
// that zero anyway).
__device__ __forceinline__ float silu_mul_exact(float g, float u) { return div_rn_skip_zero(g, 1.0f + expf(-g)) * u; }

}  // namespace mlaserve::ops::gpu
