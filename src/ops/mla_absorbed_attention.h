// The absorbed MLA decode attention of one query token a sequence as ONE op: the absorption of
// the query into latent space, the attention over the paged latent cache, and the up-projection
// of the latent output to per-head values (MODEL_SPEC §4.2). It is exactly, and its CPU
// reference runs, the three ops in a row:
//
//   q_abs = mla_absorb_query(q, w_kv_b)              [T, n, dc + dr]   (ops/mla_absorb.h)
//   o_lat = mla_decode(q_abs, cache, tables).out     [T, n, dc]        (ops/mla_decode.h)
//   o     = mla_up_project_output(o_lat, w_kv_b)     [T, n, dv]        (ops/mla_absorb.h)
//
//   q            [T, n, dn + dr]         per head [q_nope | q_pe], rope applied (or, with
//                                        MlaAbsorbedArgs::positions, applied by the op first)
//   w_kv_b       [n·(dn + dv), dc]       kv_b_proj: head h's rows h·(dn+dv) .. = W_UK[h] [dn, dc],
//                                        the next dv rows W_UV[h] [dv, dc]
//   kv_cache, block_table, seq_lens, query_start, softmax_scale: as MlaDecodeArgs
//   o            [T, n, dv]              the o_proj input
// No lse: the model's o_proj needs none (a decode step attends over the whole context at once).
//
// Why one op: at batch 1 on the H200 the three kernels cost 15.4 us a layer (V2-Lite, 1024
// tokens) for 5.2 MB of weights and cache, 1.2 us at the HBM rate: three launches that each wait
// for the one before, and the decode's merge through global memory (bench/NOTES-engine.md). The
// GPU kernel (src/ops/cuda/mla_absorbed_sm90.cuh) runs a sequence in one cluster of 16 CTAs, CTA h
// owning head h from the absorption to the up-projection, the pieces meeting in distributed
// shared memory, a cluster per 16 heads. It takes decode steps of one query token a sequence and
// 16, 32, .. 128 heads (V2-Lite, V3 under TP8, V2 / V3 under TP4 and TP2) only, as many
// sequences as the GPU holds clusters for: mla_absorbed_attention_fits says which; the model runs
// the three ops otherwise.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

// The longest sequence (keys, the new token included) for which the model takes this op in a
// step of num_seqs sequences: a cluster of 16 CTAs streams a sequence's cache, and past some
// length it does so slower than mla_decode's schedule over the whole GPU; the three ops' fixed
// costs weigh more with more sequences. H200, decode steps with the op against the three ops,
// graph ms (bench/NOTES-mla-decode.md, thirty-fifth session), V2-Lite BF16:
//   2,048 tokens: batch 1 / 2 / 4 1.94 / 2.56 / 3.79 against 1.99 / 2.63 / 3.94;
//   3,072: batch 1 / 2 / 3 / 4 / 5 / 6 / 7 2.00 / 2.63 / 3.47 / 3.85 / 4.47 / 4.82 / 5.11 against
//          1.99 / 2.65 / 3.51-3.53 / 3.95 / 4.56 / 4.97-5.00 / 5.23;
//   4,096: batch 1 / 2 / 3 / 4 / 5 / 6 / 7 2.07 / 2.69 / 3.54 / 3.91 / 4.57 / 4.93 / 5.20 against
//          2.00 / 2.67 / 3.54 / 3.98 / 4.61 / 5.02 / 5.29;
// 10 V3 layers (FP8) with a TP2 rank's 64 heads, batch 1: 2.253 against 2.273 at 2,048 tokens,
// 2.276 against 2.265 at 3,072. Known on the host only: the model compares it with
// AbsorbedRun::max_seq_len.
inline constexpr int64_t kMlaAbsorbedMaxSeqLen = 4096;  // of any step
inline int64_t mla_absorbed_max_seq_len(int64_t num_seqs) { return num_seqs >= 4 ? kMlaAbsorbedMaxSeqLen : 2048; }
inline constexpr int64_t kMlaAbsorbedHeadGroup = 16;  // heads a cluster: one CTA each
inline constexpr int64_t kMlaAbsorbedMaxHeads = 128;

struct MlaAbsorbedArgs {
  Tensor q;            // [T, n, dn + dr]   bf16 (GPU) or f32 (CPU), rope applied
  Tensor w_kv_b;       // [n·(dn + dv), dc] bf16 (GPU) or f32/bf16 (CPU)
  Tensor kv_cache;     // [num_blocks, 64, dc + dr] as MlaDecodeArgs::kv_cache
  Tensor block_table;  // [B, max_blocks] i32
  Tensor seq_lens;     // [B] i32: keys per sequence, the new tokens included
  Tensor query_start;  // [B + 1] i32
  float softmax_scale = 0.0f;
  // As MlaDecodeArgs::early_loads: everything but q was written by kernels that ended before the
  // one just before this call on the stream (the model: q comes from the RoPE kernel), so the
  // kernel reads the tables and starts its first cache block's copy before it waits for that one.
  bool early_loads = false;
  // Two clusters of 16 CTAs a sequence, each SM streaming half a head's weights, where the GPU
  // holds them all (mla_absorbed_sm90.cuh, "Head halves"); false: one a sequence. The same bits
  // either way: tests compare the two.
  bool split_heads = true;
  // The query's RoPE inside the op: apply_rope_interleaved (ops/rope.h) on each head's last dr
  // channels of q at positions [T] (i32 or i64) with the table cos_sin [P, dr] f32, the same bits
  // as that op, before the absorption; q is then read as it comes from its projection and left as
  // it is. Undefined: q comes rotated. On the GPU the kernel reads the positions and its table rows
  // before it waits for the kernel before it (programmatic launch): they must come from earlier
  // (the model's step metadata, copied before the step's first kernel).
  Tensor positions{};
  Tensor cos_sin{};
};

// CPU reference: mla_absorb_query_cpu, mla_decode_cpu and mla_up_project_output_cpu in a row
// (f32 intermediates), any shape those take.
void mla_absorbed_attention_cpu(const MlaAbsorbedArgs& args, Tensor& o);

// Whether mla_absorbed_attention takes these arguments on o's device: on the GPU, bf16 operands,
// n = 16 G heads (G = 1 .. 8), dn = 128, dr = 64, dv = 128, dc = 512, one query token a sequence
// (T = B), B <= 8, 16-byte aligned q, w_kv_b, cache and o, positions [B] i32/i64 and cos_sin [P,
// 64] f32 on the GPU when given, and a GPU that holds B G clusters of 16
// of the kernel's CTAs at once (cudaOccupancyMaxActiveClusters; a GPU that refuses clusters of 16
// holds none; an H200 holds 7). False on the host: the model keeps its three ops there. Never fails.
bool mla_absorbed_attention_fits(const MlaAbsorbedArgs& args, const Tensor& o);

// The most sequences of n_heads heads a call on `device` takes (what fits asks of the GPU's
// clusters): 0 on the host, for a head count it never takes, or where the GPU holds too few
// clusters (128 heads on an H200). Never fails.
int64_t mla_absorbed_attention_max_seqs(int64_t n_heads, Device device);

// Dispatch by device (ops/dispatch.h). On the GPU the arguments must fit (above).
void mla_absorbed_attention(const MlaAbsorbedArgs& args, Tensor& o, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA (Hopper, sm_90a): src/ops/cuda/mla_absorbed_sm90.{cuh,cu} ----------------------
//
// One kernel, grid (16, B n / 16), clusters of 16 CTAs: see the design note of mla_absorbed_sm90.cuh.
// The absorption and the up-projection sum in the order of mla_absorb_gemv.cuh's kernels and
// round where they round (same bits given the same inputs); the attention is that of the narrow
// MLA kernel at 16 CTAs a sequence, whose split of the blocks differs from mla_decode_cuda's
// schedule (the same values up to fp32 summation order and bf16 rounding of P).
bool mla_absorbed_attention_cuda_fits(const MlaAbsorbedArgs& args, const Tensor& o);
int64_t mla_absorbed_attention_cuda_max_seqs(int64_t n_heads);  // of the current device
void mla_absorbed_attention_cuda(const MlaAbsorbedArgs& args, Tensor& o, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
