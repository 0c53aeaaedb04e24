// FP8 W8A8 linear layer with DeepSeek's block scaling (MODEL_SPEC §6.3): the exact CPU reference
// for the GPU's blockwise-scaled FP8 GEMMs (DeepGEMM / CUTLASS / cuBLASLt BLK128x128).
//
//   x_q          [T, K]                     f8e4m3   (fp8_quant.h)
//   x_scales     [T, ceil(K/128)]           f32
//   w_q          [N, K]                     f8e4m3   (fp8_block.h)
//   w_scale_inv  [ceil(N/128), ceil(K/128)] f32
//   out          [T, N]                     f32, caller-allocated:
//     out[t, o] = Σ_g ( Σ_{κ∈g} x_q[t, κ]·w_q[o, κ] ) · (x_scales[t, g] · w_scale_inv[o/128, g])
//
// Each 128-wide K group is summed in fp32 on its own (products of two e4m3 values are exact in
// fp32), then scaled and added to the fp32 total: the promotion scheme of DeepGEMM, whose
// tensor-core partial sums are only ~fp22 within a group, so the GPU matches this reference to
// accumulation-order error, not bitwise.
//
// linear_fp8_cpu is what the model graph calls for an FP8 weight: it quantises x (f32 [T, K])
// with `act` and runs the W8A8 product above.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"
#include "ops/fp8_quant.h"

namespace mlaserve::ops {

void linear_fp8_w8a8_cpu(const Tensor& x_q, const Tensor& x_scales, const Tensor& w_q,
                         const Tensor& w_scale_inv, Tensor& out);

void linear_fp8_cpu(const Tensor& x, const Tensor& w_q, const Tensor& w_scale_inv,
                    const ActQuantParams& act, Tensor& out);

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void linear_fp8(const Tensor& x, const Tensor& w_q, const Tensor& w_scale_inv, const ActQuantParams& act, Tensor& out, Stream stream = {});

}  // namespace mlaserve::ops
