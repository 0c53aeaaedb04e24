// The W_UK absorption of mla_absorb_query_cuda for 8 < T <= kAbsorbMmaMaxTokens rows as a
// per-head tensor-core GEMM of our own: which shapes it takes and its launch, called by
// mla_absorb_cuda.cc, which checks the shapes. Design note and kernel: mla_absorb_mma.cuh.
#pragma once

#include <cuda_runtime_api.h>

#include "core/tensor.h"
#include "ops/cuda/mla_absorb_gemv.h"

namespace mlaserve::ops::gpu {

inline constexpr int kAbsorbMmaMaxTokens = 256;  // up to here (past the GEMVs) the kernel replaces cuBLASLt

// Whether the kernel takes this problem (the same parameters as the GEMVs', MlaAbsorbGemvParams):
// 1 <= T <= kAbsorbMmaMaxTokens, dn % 16 == 0, dr % 8 == 0, dc % 128 == 0, and q, w_kv_b and
// q_abs 16-byte aligned (every row, head and column block then starts on 16 bytes). Otherwise
// mla_absorb_query_cuda keeps cuBLASLt.
bool mla_absorb_mma_applies(const MlaAbsorbGemvParams& p);

// q_abs = [W_UK[h]ᵀ·q_nope[h] | q_pe[h]] per token and head; needs mla_absorb_mma_applies(p).
void launch_mla_absorb_mma(const MlaAbsorbGemvParams& p, cudaStream_t stream);

}  // namespace mlaserve::ops::gpu

namespace mlaserve::ops {

// Tests and benchmarks only: mla_absorb_query_cuda through cuBLASLt's strided batched GEMM and the
// 2-D copy of q_pe at any T (the path of T > kAbsorbMmaMaxTokens and of shapes no kernel of ours
// takes), to compare our kernels with it. Same checks and contract as mla_absorb_query_cuda.
void mla_absorb_query_cublaslt(const Tensor& q, const Tensor& w_kv_b, Tensor& q_abs, cudaStream_t stream);

}  // namespace mlaserve::ops
