// The dense block-FP8 product as the grouped MoE FP8 GEMM's one group (Fp8GemmKernel::kOneGroup,
// ops/linear_fp8.h): for prefill-sized shapes that cuBLASLt refuses. Internal to src/ops/cuda.
#pragma once

#include <cuda_runtime_api.h>

#include "core/tensor.h"

namespace mlaserve::ops {

// out [T, N] bf16 = x_q [T, K] · w_qᵀ as linear_fp8_w8a8_cuda, through moe_grouped_gemm_fp8_cuda
// with one expert owning all T rows (its offsets {0, T} written on the stream first, so the call
// can be captured in a CUDA graph). N and K multiples of 128; shapes checked by the caller.
void run_fp8_one_group(const Tensor& x_q, const Tensor& x_scales, const Tensor& w_q, const Tensor& w_scale_inv,
                       Tensor& out, cudaStream_t stream);

}  // namespace mlaserve::ops
