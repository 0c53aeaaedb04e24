// Token embedding lookup (MODEL_SPEC §2): h_0 = embed_tokens[token_ids], with no multiplier.
//
//   ids    [T]     i32 or i64
//   table  [V, H]  f32 or bf16 (model.embed_tokens.weight as loaded)
//   out    [T, H]  f32, caller-allocated: out[t, :] = table[ids[t], :]
//
// This is a plain row gather, so the MoE dispatch uses it as well, to collect the rows of the
// tokens routed to each expert (moe_dispatch.h). An id outside [0, V) is an error, never a
// clamp: it means a tokenizer, sampler or batching bug upstream.
//
// gather_fp8_rows: the same gather of FP8-quantised rows (fp8_quant.h), codes and scales together:
//   ids        [P]     i32 or i64, each in [0, T)
//   x_q        [T, K]  e4m3 codes;  x_scales [T, G] f32, G = ceil(K/128)
//   out_q      [P, K]  e4m3, caller-allocated: out_q[p, :] = x_q[ids[p], :]
//   out_scales [P, G]  f32,  caller-allocated: out_scales[p, :] = x_scales[ids[p], :]
// A byte copy. Why: the activation quantisation is per row, so quantising T rows and gathering
// them gives the bits of quantising the P gathered rows; the FP8 MoE (ffn_block.cc) quantises its
// T token rows once and gathers e4m3 rows (half the bytes of bf16) instead of gathering P = T·k
// bf16 rows and quantising those (k times the rows).
#pragma once

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

void embedding_cpu(const Tensor& ids, const Tensor& table, Tensor& out);
void gather_fp8_rows_cpu(const Tensor& ids, const Tensor& x_q, const Tensor& x_scales, Tensor& out_q,
                         Tensor& out_scales);

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void embedding(const Tensor& ids, const Tensor& table, Tensor& out, Stream stream = {});
void gather_fp8_rows(const Tensor& ids, const Tensor& x_q, const Tensor& x_scales, Tensor& out_q, Tensor& out_scales,
                     Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/embedding.cu ---------------------------------------------------------
// ids [T] i32/i64, table [V, H] f32 or bf16, out [T, H] f32 or bf16 (any pair; bf16 -> bf16 and
// f32 -> f32 are exact copies), all on the GPU; asynchronous on stream. The ids are NOT checked
// on the device (reporting would need a synchronisation): callers validate them on the host, as
// DeepSeekModel::forward does for token ids and logit rows; the MoE gather's ids come from
// moe_group_by_expert. The kernel never reads outside the table: a row whose id is outside
// [0, V) is written as zeros.
void embedding_cuda(const Tensor& ids, const Tensor& table, Tensor& out, cudaStream_t stream);

// gather_fp8_rows on the GPU: all tensors on the GPU, asynchronous on stream, ids unchecked on the
// device as above (an id outside [0, T) gives a zero row of codes and of scales). One launch for
// both planes, 16-byte copies where K % 16 == 0 and G % 4 == 0 and all four bases are 16-byte
// aligned (every DeepSeek K), else 4-byte (K % 4 == 0) or 1-byte ones.
void gather_fp8_rows_cuda(const Tensor& ids, const Tensor& x_q, const Tensor& x_scales, Tensor& out_q,
                          Tensor& out_scales, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
