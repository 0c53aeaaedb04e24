// Dense linear layer without bias (MODEL_SPEC: every projection is y = x · Wᵀ, W [out, in]).
//
//   x       [T, K]  f32
//   weight  [N, K]  f32 or bf16 (a checkpoint tensor as loaded; FP8 weights go through
//                   linear_fp8.h instead)
//   out     [T, N]  f32, caller-allocated: out[t, o] = Σ_k x[t, k] · weight[o, k]
//
// fp32 accumulation (16 partial sums per dot, cpu_util.h). The CPU loop converts 16 weight
// rows at a time to f32 and runs every token against them, so each weight row is read once.
// Router logits (MODEL_SPEC §5.1) use this op too: with an f32 x it is the fp32 router GEMM.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

void linear_cpu(const Tensor& x, const Tensor& weight, Tensor& out);

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void linear(const Tensor& x, const Tensor& weight, Tensor& out, Stream stream = {});

}  // namespace mlaserve::ops
