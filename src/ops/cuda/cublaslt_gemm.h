// cuBLASLt behind the GEMM-shaped ops (linear_cuda, mla_absorb_cuda): one call, D = A · B, in
// row-major terms, optionally a strided batch of such products. Internal to src/ops/cuda.
//
//   A  [M, K]                 row stride lda (elements), batch stride batch_a
//   B  [N, K] (kNK: D = A·Bᵀ, a weight as stored) or [K, N] (kKN: D = A·B), stride ldb, batch_b
//   D  [M, N]                 row stride ldd, batch stride batch_d
//
// A and B are both bf16 (D bf16 or f32) or both f32 (D f32); the products accumulate in fp32
// (CUBLAS_COMPUTE_32F: no TF32 for f32 inputs), alpha = 1, beta = 0.
//
// Or both f8e4m3 with DeepSeek's block scales (D bf16 or f32; kNK only; cuBLAS 12.9+ on sm_90), set in
// GemmProblem::fp8_scales (scale layouts from the cuBLAS guide, "Scaling factors layouts"):
//   a_vec128  [ceil(K/128), M] f32, M contiguous: A's 1 x 128 groups (VEC128_32F). Note the
//             transpose: an activation quantiser writes [M, ceil(K/128)]
//             (ops/fp8_quant.h; transpose_fp8_act_scales_cuda in ops/linear_fp8.h), or
//             [ceil(K/128), M] with Fp8ScaleLayout::kGroupMajor.
//   b_blk128  [ceil(N/128), ceil(K/128)] f32, K contiguous: B's 128 x 128 blocks
//             (BLK128x128_32F), the checkpoint's scale_inv as stored.
// cuBLASLt's own constraints, checked: M and N multiples of 4, K a multiple of 16,
// ceil(K/128) a multiple of 4 (the row stride of b_blk128), scales 16-byte aligned. Another
// ceil(K/128) cuBLASLt computes right only with each 128-row block's scales padded to a multiple of
// 4; packed as stored, its results are silently wrong (tools/cublaslt_fp8_probe.cu): so the check.
//
// Steady state does no allocation and no synchronisation, so calls can be captured in a CUDA
// graph. What is cached, per host thread and device:
//   - one cuBLASLt handle;
//   - one 32 MiB workspace per stream (cuBLAS's recommendation for Hopper), allocated by the
//     first call on that stream; a first call made while the stream is being captured fails
//     with a message (run the graph's shapes once, eagerly, before capturing);
//   - per problem (shapes, strides, dtypes, batch and the pointers' alignments): the matmul
//     and layout descriptors and the heuristic's first algorithm. A new shape costs a host-side
//     heuristic query once, capture or not (~0.4-0.5 ms each on the engine's shapes, H200 host,
//     2026-11-28/29: 398-725 plans, 0.2-0.3 s of host time in a 1,000-request benchmark).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"
#include "ops/gemm_plan_stats.h"

namespace mlaserve::ops::cuda {

enum class BLayout : uint8_t {
  kNK,  // B is [N, K]: D = A · Bᵀ (a weight [out, in] as the checkpoint stores it)
  kKN,  // B is [K, N]: D = A · B
};

struct GemmOperand {
  const void* data = nullptr;
  int64_t row_stride = 0;    // elements between consecutive rows
  int64_t batch_stride = 0;  // elements between consecutive batch entries (batch > 1)
};

// Block scales of an FP8 problem (layouts above); both null for bf16 / f32 problems.
struct Fp8BlockScales {
  const float* a_vec128 = nullptr;  // [ceil(K/128), M]
  const float* b_blk128 = nullptr;  // [ceil(N/128), ceil(K/128)]
};

struct GemmProblem {
  int64_t m = 0, n = 0, k = 0;
  int64_t batch = 1;
  DType ab_dtype = DType::kBF16;  // A and B
  DType d_dtype = DType::kBF16;   // D
  BLayout b_layout = BLayout::kNK;
  GemmOperand a, b;
  void* d = nullptr;
  int64_t d_row_stride = 0;
  int64_t d_batch_stride = 0;
  Fp8BlockScales fp8_scales;  // required when ab_dtype is kF8E4M3
};

// Enqueues the product on stream. Shapes must be positive (callers return early on empty
// problems); strides are checked against the shapes, dtypes against the supported pairs.
void lt_gemm(const GemmProblem& p, cudaStream_t stream);

// The plans lt_gemm has built (ops/gemm_plan_stats.h).
GemmPlanStats lt_plan_stats();

}  // namespace mlaserve::ops::cuda
