// MoE dispatch and combine (MODEL_SPEC §5.3): run each routed expert once over the tokens that
// chose it, then sum the weighted expert outputs per token.
//
// A token-expert "pair" is flat index p = t·k + j for expert_ids[t, j] (router output, [T, k]).
//
// moe_group_by_expert_cpu: sorts the T·k pairs by expert (stable: token order within an expert).
//   expert_offsets  [E + 1] i32: expert e owns sorted positions [offsets[e], offsets[e + 1])
//   sorted_pairs    [T·k] i32:   the pair at each sorted position
//   sorted_tokens   [T·k] i32:   its token (sorted_pairs / k), the ids for the row gather
//
// The graph then: gathered = embedding_cpu(sorted_tokens, m)            [T·k, H]
//                 for each e, rows [offsets[e], offsets[e+1]) of gathered -> Expert_e -> the
//                 same rows of expert_out                                [T·k, H]
//                 moe_combine_cpu(expert_out, sorted_pairs, weights, y)
//
// moe_combine_cpu: y[t, :] += Σ_j weights[t, j] · expert_out[position of pair t·k + j, :]
//   expert_out [T·k, H] f32 (sorted order), sorted_pairs [T·k] i32, weights [T, k] f32,
//   y [T, H] f32, ACCUMULATED into (pass the shared experts' output to get FFN(m) in one
//   buffer). Per token the k terms are added in j order, in fp32.
#pragma once

#include <cstdint>

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

struct MoeGrouping {
  Tensor expert_offsets;  // [E + 1] i32
  Tensor sorted_pairs;    // [T·k] i32
  Tensor sorted_tokens;   // [T·k] i32
};

void moe_group_by_expert_cpu(const Tensor& expert_ids, int64_t num_experts, MoeGrouping& grouping);

void moe_combine_cpu(const Tensor& expert_out, const Tensor& sorted_pairs, const Tensor& weights, Tensor& y);

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void moe_group_by_expert(const Tensor& expert_ids, int64_t num_experts, MoeGrouping& grouping, Stream stream = {});
void moe_combine(const Tensor& expert_out, const Tensor& sorted_pairs, const Tensor& weights, Tensor& y, Stream stream = {});

}  // namespace mlaserve::ops
