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
// moe_group_and_gather_cpu: moe_group_by_expert_cpu, then gathered = embedding_cpu(sorted_tokens,
//   x): the grouping and the row gather in one op (on the GPU one launch for decode batches).
//   x [T, H], gathered [T·k, H] caller-allocated, same dtype.
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

// Which rows moe_combine adds, and onto what (the default: every row, accumulated into y).
struct MoeCombineScope {
  // Under expert parallelism, expert_offsets' entries e0 .. e1 of the experts [e0, e1) a rank holds
  // ([e1 - e0 + 1] i32, a slice, on y's device): only the sorted positions [offsets[e0], offsets[e1])
  // hold rows; the pairs at other positions add nothing and their rows are never read (need not be
  // written). Undefined: every position holds a row.
  Tensor held_offsets;
  bool accumulate = true;  // false: y = the combine alone (y's former contents are not read)
  // sorted_pairs, weights and held_offsets come from a kernel at least two launches back (a decode
  // step's routing, before the experts' GEMVs: MoeCombineInputs::early_inputs, moe_combine_norm.h);
  // only expert_out and y may still be in the writing. The GPU's decode-size kernel then scans its
  // first token's positions and prefetches its weights before it waits (programmatic launch).
  bool early_inputs = false;
};

void moe_group_by_expert_cpu(const Tensor& expert_ids, int64_t num_experts, MoeGrouping& grouping);

void moe_group_and_gather_cpu(const Tensor& expert_ids, int64_t num_experts, const Tensor& x, MoeGrouping& grouping,
                              Tensor& gathered);

void moe_combine_cpu(const Tensor& expert_out, const Tensor& sorted_pairs, const Tensor& weights, Tensor& y,
                     const MoeCombineScope& scope = {});

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void moe_group_by_expert(const Tensor& expert_ids, int64_t num_experts, MoeGrouping& grouping, Stream stream = {});
void moe_group_and_gather(const Tensor& expert_ids, int64_t num_experts, const Tensor& x, MoeGrouping& grouping,
                          Tensor& gathered, Stream stream = {});
void moe_combine(const Tensor& expert_out, const Tensor& sorted_pairs, const Tensor& weights, Tensor& y,
                 Stream stream = {}, const MoeCombineScope& scope = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/moe_dispatch.{cuh,cu} ------------------------------------------------
// All tensors on the GPU; asynchronous on stream, no host synchronisation (capturable in a CUDA
// graph). Kernels and the rule that picks them by size: moe_dispatch_kernels.h.
// moe_group_by_expert_cuda: expert_ids and the grouping i32, E <= 256; the same stable order as
// the CPU, deterministic: one CTA up to 2048 pairs, above that a three-kernel multi-CTA sort with
// a [E + 1, <= 64] i32 workspace from the caching allocator. Ids are not checked on the device: an
// id outside [0, E) (never produced by moe_route) is sorted after every expert, so
// expert_offsets[E] counts only the valid pairs and the outputs stay a permutation.
// moe_combine_cuda: expert_out bf16, weights f32, y bf16 or f32, k <= 32; per token the k terms
// are added to y in j order in fp32 and y is rounded once to bf16 (an f32 y, a tensor-parallel
// partial output that is all-reduced before it is rounded, keeps the fp32 sum); a pair that no
// entry of sorted_pairs names adds nothing. Up to 2048 pairs (decode batches) one kernel finds
// each token's positions itself; above, a [T·k] i32 workspace from the caching allocator holds
// the inverse of sorted_pairs for a second kernel; the same results.
void moe_group_by_expert_cuda(const Tensor& expert_ids, int64_t num_experts, MoeGrouping& grouping,
                              cudaStream_t stream);
// moe_group_and_gather_cuda: x and gathered bf16; up to 64 pairs (decode batches) the grouping
// CTA also copies the rows (moe_dispatch.cuh, step 4), bit for bit what embedding_cuda copies;
// above that, moe_group_by_expert_cuda then embedding_cuda.
void moe_group_and_gather_cuda(const Tensor& expert_ids, int64_t num_experts, const Tensor& x, MoeGrouping& grouping,
                               Tensor& gathered, cudaStream_t stream);
void moe_combine_cuda(const Tensor& expert_out, const Tensor& sorted_pairs, const Tensor& weights, Tensor& y,
                      cudaStream_t stream, const MoeCombineScope& scope = {});

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
