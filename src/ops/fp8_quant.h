// Dynamic FP8 activation quantisation (MODEL_SPEC §6.3): per token and per group of 128
// contiguous channels, the activation side of DeepSeek's W8A8 GEMM (linear_fp8.h).
//
//   x       [T, K]               f32
//   x_q     [T, K]               f8e4m3, caller-allocated
//   scales  [T, ceil(K/128)]     f32, caller-allocated (multipliers: x ≈ x_q · scale)
//
// Per (t, g): amax = max(max_{κ∈g} |x[t, κ]|, params.amax_floor); s = amax / 448, or with
// Fp8ScaleFormat::kUE8M0 (V3.1's scale_fmt) the power of two 2^ceil(log2(amax / 448));
// x_q = e4m3(x / s), round to nearest even, saturating at ±448. This is REF's act_quant
// (division, not a multiply by 1/s: the two can differ by one e4m3 step). Every K of the
// released models is a multiple of 128; a partial last group is quantised the same way.
#pragma once

#include "core/tensor.h"
#include "ops/fp8_block.h"

namespace mlaserve::ops {

enum class Fp8ScaleFormat {
  kFloat32,  // s = amax / 448
  kUE8M0,    // s rounded up to a power of two (an exponent-only scale)
};

struct ActQuantParams {
  float amax_floor = kFp8AmaxFloor;  // REF's clamp; vLLM uses ~1e-10
  Fp8ScaleFormat scale_format = Fp8ScaleFormat::kFloat32;
};

void quantize_activations_fp8_cpu(const Tensor& x, const ActQuantParams& params, Tensor& x_q,
                                  Tensor& scales);

}  // namespace mlaserve::ops
