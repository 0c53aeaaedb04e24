// RMSNorm over the last dimension (MODEL_SPEC §2), and its fused residual-add form.
//
//   x        [..., d]  f32 (any leading dimensions: rows = numel / d)
//   weight   [d]       f32 or bf16
//   out      [..., d]  f32, caller-allocated; may be x itself (in place)
//
//   rms_norm:      out = weight ⊙ x / sqrt(mean_j(x_j²) + eps)
//   add_rms_norm:  residual += x, then out = rms_norm(residual)   (residual [..., d] f32)
//   add_sum_rms_norm: residual += base + rest, then out = rms_norm(residual): an addend in two
//                  parts (base, rest [..., d] f32), for the MoE under tensor parallelism, whose
//                  shared experts' output (base) one GPU rounds before the routed experts' sum
//                  (rest) is added to it (see the CUDA contract below)
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

void add_sum_rms_norm_cpu(const Tensor& base, const Tensor& rest, Tensor& residual, const Tensor& weight, float eps,
                          Tensor& out);

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out, Stream stream = {});
void add_rms_norm(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out, Stream stream = {});
void add_sum_rms_norm(const Tensor& base, const Tensor& rest, Tensor& residual, const Tensor& weight, float eps,
                      Tensor& out, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/rms_norm.cu ----------------------------------------------------------
// x, out and residual bf16, weight f32 or bf16, all on the GPU; asynchronous on stream. Sum of
// squares, mean, rsqrt and the weight multiply in fp32, out rounded once to bf16; out may be x.
// add_rms_norm_cuda rounds the updated residual stream to bf16 (as HF and vLLM keep it) and
// normalises that rounded value; residual must not alias x or out. Its addend x may also be f32:
// the sum of a sublayer's partial outputs over the tensor-parallel ranks, all-reduced in fp32.
// It is rounded to bf16 here, residual = bf16(residual + bf16(x)): the two roundings of one GPU,
// whose GEMM stores the whole sum in bf16 before this op adds it (instead of rounding each
// rank's partial sum and the all-reduce's additions), so TP adds what one GPU adds.
// add_sum_rms_norm_cuda: base and rest f32 (the all-reduced sums of the shared experts' partial
// outputs and of the routed experts' partial combines), residual = bf16(residual +
// bf16(bf16(base) + rest)): one GPU's MoE rounds its shared experts' output, accumulates the
// weighted routed outputs onto it in fp32 and rounds the total (moe_dispatch.h).
void rms_norm_cuda(const Tensor& x, const Tensor& weight, float eps, Tensor& out, cudaStream_t stream);
void add_rms_norm_cuda(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out,
                       cudaStream_t stream);
void add_sum_rms_norm_cuda(const Tensor& base, const Tensor& rest, Tensor& residual, const Tensor& weight, float eps,
                           Tensor& out, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
