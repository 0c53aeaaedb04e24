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
