// Decode attention over the paged MHA cache (KvCacheLayout::kMha, issue #7): the few new tokens
// of each sequence (decode, speculative verification) attend to every cached K/V of their head.
//
//   q            [T, n, dqk]                          per head [q_nope | q_pe], rope applied
//   cache        [num_blocks, block_size, n·(dqk+dv)] paged_mha_cache.h's rows [K all heads | V all heads]
//   block_table  [B, max_blocks] i32                  sequence b's block ids (row padding unused)
//   seq_lens     [B] i32                              cached tokens of b, its new ones included (>= 1)
//   query_start  [B + 1] i32                          b owns query rows [query_start[b], query_start[b+1])
//   out          AttentionState: out [T, n, dv], lse [T, n] f32 (natural log), caller-allocated
//
// Query i of a sequence of q_len new tokens sits at position seq_len - q_len + i and sees the
// keys 0 .. seq_len - q_len + i (causal, bottom-right aligned as mha_attention.h):
//   score[s] = softmax_scale · q[i, h] · K[s, h],  out[i, h] = Σ_s softmax(score)[s] · V[s, h].
// dv = cache.dim(2) / n - dqk. seq_len >= q_len for every sequence.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"
#include "ops/merge_attention_states.h"

namespace mlaserve::ops {

struct PagedMhaDecodeArgs {
  Tensor q;
  Tensor cache;
  Tensor block_table;
  Tensor seq_lens;
  Tensor query_start;
  float softmax_scale = 0.0f;
};

void paged_mha_decode_cpu(const PagedMhaDecodeArgs& args, AttentionState& out);

// Dispatch by device (ops/dispatch.h): the model graph calls this.
void paged_mha_decode(const PagedMhaDecodeArgs& args, AttentionState& out, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/paged_mha_decode.cu ---------------------------------------------------
// Flash-decoding on CUDA cores, specialised to dqk = 192, dv = 128: one warp per (sequence,
// head, context split), each lane scoring one cached key at a time (24 16-byte loads of its K
// row) and the warp accumulating the V rows of 32 keys (8-byte loads, coalesced), so every
// cached K/V byte is read once per sequence (all of its <= 4 query rows at once; longer query
// chunks are taken 4 rows at a time). The context is split when the batch alone cannot fill the
// GPU; the splits' partial states are merged by LSE in a second kernel. The split count depends
// only on B, n and the GPU (not on the lengths), so a captured step replays for any lengths.
// q and out.out bf16, out.lse f32, the cache bf16; indices i32 on the GPU. Asynchronous on
// stream; allocates its split workspace (f32) per call.
void paged_mha_decode_cuda(const PagedMhaDecodeArgs& args, AttentionState& out, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
