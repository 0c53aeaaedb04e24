// Attention in the MHA ("naive") form over per-head K and V, for MLA prefill (MODEL_SPEC §3.2,
// §4.3): one sequence at a time, qk head dim (dn + dr = 192) != v head dim (dv = 128).
//
//   q    [Tq, n, dqk] f32   per head [q_nope | q_pe], rope applied
//   k    [Tk, n, dqk] f32   per head [k_nope | k_pe] (mla_expand_kv.h builds it)
//   v    [Tk, n, dv]  f32
//   out  AttentionState: out [Tq, n, dv] f32, lse [Tq, n] f32, caller-allocated
//   out_q  optional: out quantised for an FP8 reader, written in its place (AttentionFp8Output,
//          merge_attention_states.h)
//
//   score[h, i, s] = softmax_scale · q[i, h] · k[s, h], softmax over the visible s in fp32,
//   out[i, h] = Σ_s p · v[s, h],  lse[i, h] = log Σ_s exp(score)  (natural log)
//
// causal = true: the mask is aligned bottom-right (query i sees keys 0 .. Tk - Tq + i; needs
// Tk >= Tq): the new tokens of a chunk attending to themselves after any context in front.
// causal = false: every query sees every key — a chunk of cached context in chunked prefill,
// whose partial state is then merged (merge_attention_states.h). Tk = 0 is allowed there and
// gives out = 0, lse = -inf.
// softmax_scale is explicit: the model's (dn + dr)^-1/2 · m².
#pragma once

#include "core/stream.h"
#include "core/tensor.h"
#include "ops/merge_attention_states.h"

namespace mlaserve::ops {

struct MhaParams {
  float softmax_scale = 0.0f;
  bool causal = true;  // bottom-right aligned causal mask; false: no mask
};

void mha_attention_cpu(const Tensor& q, const Tensor& k, const Tensor& v, const MhaParams& params,
                       AttentionState& out, const AttentionFp8Output& out_q = {});

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void mha_attention(const Tensor& q, const Tensor& k, const Tensor& v, const MhaParams& params, AttentionState& out,
                   Stream stream = {}, const AttentionFp8Output& out_q = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA (Hopper, sm_90a): src/ops/cuda/mha_attention_sm90.{cuh,cu} ----------------------
//
// Flash attention forward (FlashAttention-3's design: TMA producer warpgroup, two wgmma
// consumer warpgroups, online softmax in fp32), specialised to dqk = 192 and dv = 128.
// q, k, v and out.out are bf16 on the GPU (out.out [Tq, n, 128] bf16, not f32 as on the
// host), out.lse f32; every tensor contiguous and 16-byte aligned (row slices of contiguous
// tensors are). Same semantics as mha_attention_cpu, Tk = 0 included; with out_q the epilogue
// quantises the bf16 rows it would store and writes their codes instead. Shapes are checked here; asynchronous on
// stream, no host synchronisation.
void mha_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const MhaParams& params,
                        AttentionState& out, const AttentionFp8Output& out_q, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
