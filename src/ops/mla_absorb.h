// MLA weight absorption (MODEL_SPEC §4.2): the per-head matmuls around the absorbed decode
// attention (mla_decode.h), reading W_UK and W_UV straight from kv_b_proj's layout.
//
//   w_kv_b  [n·(dn + dv), dc] f32 or bf16: kv_b_proj.weight; head h's rows are
//           [h·(dn+dv), h·(dn+dv) + dn) = W_UK[h] [dn, dc] then the next dv rows = W_UV[h] [dv, dc]
//           (per-head [K_h | V_h] blocks, never "all K then all V"). FP8 checkpoints dequantise
//           kv_b_proj once at load (fp8_block.h).
//
// mla_absorb_query_cpu: the decode query in latent space.
//   q      [T, n, dn + dr] f32  per head [q_nope | q_pe], rope applied
//   q_abs  [T, n, dc + dr] f32  per head [W_UK[h]ᵀ·q_nope[h] | q_pe[h]], the `q` of mla_decode
//   q_lat[h][c] = Σ_d q_nope[h][d] · w_kv_b[h·(dn+dv) + d][c]
//
// mla_up_project_output_cpu: the latent attention output back to per-head values.
//   o_lat  [T, n, dc] f32  (mla_decode's out)
//   o      [T, n, dv] f32  o[h][j] = Σ_c w_kv_b[h·(dn+dv) + dn + j][c] · o_lat[h][c]
//
// dn, dr, dv and dc follow from the shapes (n = q.dim(1), dc = w_kv_b.dim(1), dr = q_abs
// width - dc, dn = q width - dr, dv = rows per head - dn) and are checked for consistency. Both
// are fp32-accumulating; the GPU versions are strided batched GEMMs over the same layout.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

void mla_absorb_query_cpu(const Tensor& q, const Tensor& w_kv_b, Tensor& q_abs);

void mla_up_project_output_cpu(const Tensor& o_lat, const Tensor& w_kv_b, Tensor& o);

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void mla_absorb_query(const Tensor& q, const Tensor& w_kv_b, Tensor& q_abs, Stream stream = {});
void mla_up_project_output(const Tensor& o_lat, const Tensor& w_kv_b, Tensor& o, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/mla_absorb_cuda.cc, cuBLASLt strided batched GEMMs ------------------
//
// The same contracts on GPU tensors with q, w_kv_b, q_abs, o_lat and o all bf16 (an FP8
// kv_b_proj is dequantised to bf16 once at load). One batch entry per head, reading W_UK[h] and
// W_UV[h] in place from w_kv_b with a batch stride of (dn + dv) rows; fp32 accumulation, bf16
// outputs. mla_absorb_query_cuda also copies q_pe into channels [dc, dc + dr) of q_abs
// (cudaMemcpy2DAsync). Up to 8 tokens (decode batches; dc % 8 == 0, w_kv_b and o_lat 16-byte
// aligned) per-head GEMV kernels do both instead, the q_pe copy included
// (src/ops/cuda/mla_absorb_gemv.cuh); from 9 to 256 tokens the absorption runs a per-head
// mma.sync GEMM of ours, the q_pe copy included (src/ops/cuda/mla_absorb_mma.cuh; dn % 16 == 0,
// dr % 8 == 0, dc % 128 == 0, q, w_kv_b and q_abs 16-byte aligned). Asynchronous,
// graph-capturable after one eager run (as linear_cuda).
void mla_absorb_query_cuda(const Tensor& q, const Tensor& w_kv_b, Tensor& q_abs, cudaStream_t stream);

void mla_up_project_output_cuda(const Tensor& o_lat, const Tensor& w_kv_b, Tensor& o, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
