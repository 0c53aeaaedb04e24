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
#include "ops/l2_prefetch.h"

namespace mlaserve::ops {

void linear_cpu(const Tensor& x, const Tensor& weight, Tensor& out);

// Dispatch by device (ops/dispatch.h): the model graph calls these. `prefetch`: weights of later
// kernels for the GPU's GEMV to pull into L2 while it waits (l2_prefetch.h); a hint, no result
// depends on it.
void linear(const Tensor& x, const Tensor& weight, Tensor& out, Stream stream = {},
            const L2Prefetches& prefetch = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/linear_cuda.cc through cuBLASLt (src/ops/cuda/cublaslt_gemm.h) ------
//
// Same contract on GPU tensors: x [T, K] and weight [N, K] both bf16 with out [T, N] bf16 or
// f32 (router logits and lm_head write f32), or all three f32 (exact fp32, no TF32). fp32
// accumulation. x and weight may be row views (Tensor::slice). Asynchronous on stream; no
// allocation or synchronisation once a shape has run on this thread and stream, so a step can
// be captured in a CUDA graph after one eager run (cublaslt_gemm.h says what is cached).
//
// A bf16 call with at most 8 tokens (decode batches) takes the GEMV path instead when
// linear_gemv_applies (K a multiple of 8, x and weight 16-byte aligned): one pass over the weight
// by many CTAs, where cuBLASLt's small-M tiles are latency-bound: on the CUDA cores
// (src/ops/cuda/linear_gemv.cuh) or, from 4 tokens, the tensor cores (linear_gemv_mma.cuh;
// src/ops/cuda/linear_gemv.h has the rule). The CUDA-core GEMV issues `prefetch`.
void linear_cuda(const Tensor& x, const Tensor& weight, Tensor& out, cudaStream_t stream,
                 const L2Prefetches& prefetch = {});

// The GEMV path on its own (tests, benchmarks): bf16 x [T, K] with 1 <= T <= 8, bf16 weight
// [N, K], out [T, N] bf16 or f32; fails unless linear_gemv_applies.
bool linear_gemv_applies(const Tensor& x, const Tensor& weight, const Tensor& out);
void linear_gemv_cuda(const Tensor& x, const Tensor& weight, Tensor& out, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
