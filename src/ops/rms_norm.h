// RMSNorm over the last dimension (MODEL_SPEC §2), and its fused residual-add form.
//
//   x        [..., d]  f32 (any leading dimensions: rows = numel / d)
//   weight   [d]       f32 or bf16
//   out      [..., d]  f32, caller-allocated; may be x itself (in place)
//
//   rms_norm:      out = weight ⊙ x / sqrt(mean_j(x_j²) + eps)
//   add_rms_norm:  residual += x, then out = rms_norm(residual)   (residual [..., d] f32)
//
// The mean, the rsqrt and the weight multiply are all fp32 (REF's order after its Aug-2025 fix;
// HF rounds x·rsqrt to bf16 before the weight multiply, at most 1 bf16 ulp away). eps is the
// config's rms_norm_eps. add_rms_norm is the pre-norm block's "h = h + sublayer(..); norm(h)"
// in one pass: the residual stream is `residual`, the sublayer's output is `x`.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

void rms_norm_cpu(const Tensor& x, const Tensor& weight, float eps, Tensor& out);

void add_rms_norm_cpu(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out);

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out, Stream stream = {});
void add_rms_norm(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/rms_norm.cu ----------------------------------------------------------
// x, out and residual bf16, weight f32 or bf16, all on the GPU; asynchronous on stream. Sum of
// squares, mean, rsqrt and the weight multiply in fp32, out rounded once to bf16; out may be x.
// add_rms_norm_cuda rounds the updated residual stream to bf16 (as HF and vLLM keep it) and
// normalises that rounded value; residual must not alias x or out.
void rms_norm_cuda(const Tensor& x, const Tensor& weight, float eps, Tensor& out, cudaStream_t stream);
void add_rms_norm_cuda(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out,
                       cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
