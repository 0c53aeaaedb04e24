// Token embedding lookup (MODEL_SPEC §2): h_0 = embed_tokens[token_ids], with no multiplier.
//
//   ids    [T]     i32 or i64
//   table  [V, H]  f32 or bf16 (model.embed_tokens.weight as loaded)
//   out    [T, H]  f32, caller-allocated: out[t, :] = table[ids[t], :]
//
// This is a plain row gather, so the MoE dispatch uses it as well, to collect the rows of the
// tokens routed to each expert (moe_dispatch.h). An id outside [0, V) is an error, never a
// clamp: it means a tokenizer, sampler or batching bug upstream.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

void embedding_cpu(const Tensor& ids, const Tensor& table, Tensor& out);

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void embedding(const Tensor& ids, const Tensor& table, Tensor& out, Stream stream = {});

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

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
