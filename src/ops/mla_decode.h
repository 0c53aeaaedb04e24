// MLA decode attention, the absorbed ("matrix absorption") form over the paged latent cache.
// MODEL_SPEC.md §4. This is MQA with one 576-wide "KV head" shared by every query head:
//
//   cache row (per token, per layer):  [ c_n (kv_lora_rank = 512) | k_pe (rope = 64) ]
//   query (per token, per head):       [ q_lat = W_UK^T q_nope (512) | q_pe (64) ]
//   score[h, t, s] = softmax_scale * dot(query[t, h, :576], cache_row[s, :576])
//   out[t, h, :512] = sum_s softmax_s(score[h, t, s]) * cache_row[s, :512]   (the latent output)
//   lse[t, h]       = log(sum_s exp(score[h, t, s]))                        (natural log)
//
// softmax_scale is passed explicitly (the model's (dn + dr)^-1/2 * m^2, never 1/sqrt(576)).
//
// Paged layout: the cache of one layer is [num_blocks, kBlockSize = 64, 576]; sequence b's
// token at position p lives in block block_table[b, p / 64], row p % 64. Blocks of a sequence
// need not be contiguous or ordered.
//
// Batch layout: B sequences, each with q_len[b] >= 1 query tokens (1 for plain decode, a few
// for speculative verification), flattened in order into T = sum_b q_len[b] query rows;
// query_start[b] is the first row of sequence b (query_start has B + 1 entries, the last = T).
// seq_lens[b] counts every key of sequence b INCLUDING its q_len new tokens, whose rows must
// already be in the cache. The causal mask is aligned bottom-right: query j (0-based) of
// sequence b sees keys 0 .. seq_lens[b] - q_len[b] + j.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace mlaserve::ops {

inline constexpr int64_t kKvBlockSize = 64;   // tokens per cache block
inline constexpr int64_t kLatentDim = 512;    // kv_lora_rank: the value part of a cache row
inline constexpr int64_t kRopeDim = 64;       // qk_rope_head_dim
inline constexpr int64_t kCacheRowDim = 576;  // kLatentDim + kRopeDim

struct MlaDecodeArgs {
  Tensor q;            // [T, n_heads, 576]   bf16 (GPU) or f32/bf16 (CPU)
  Tensor kv_cache;     // [num_blocks, 64, 576] bf16 (GPU) or f32/bf16 (CPU)
  Tensor block_table;  // [B, max_blocks_per_seq] i32
  Tensor seq_lens;     // [B] i32: keys per sequence, the new tokens included
  Tensor query_start;  // [B + 1] i32: first query row of each sequence; query_start[B] = T
  float softmax_scale = 0.0f;
};

struct MlaDecodeOutputs {
  Tensor out;  // [T, n_heads, 512]  f32 (CPU) or bf16 (GPU)
  Tensor lse;  // [T, n_heads]       f32
};

// CPU reference: plain loops, fp32 accumulation, a two-pass softmax per (token, head). It
// accepts any row width D (q [T, n, D], kv_cache [num_blocks, block_size, D]), any latent width
// (out's last dimension, <= D) and any block size, so that tiny test models can use it; the CUDA
// kernel is specialised to 576 / 512 / 64.
void mla_decode_cpu(const MlaDecodeArgs& args, MlaDecodeOutputs& outputs);

}  // namespace mlaserve::ops
