// Launch parameters of the sm90 MHA prefill kernels (mha_attention_sm90.cuh): plain structs
// passed by value, every pointer to device memory. Shapes use the names of ops/mha_attention.h:
// Tq queries, Tk keys, n heads, qk head dim 192, v head dim 128.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>

#include <cstdint>

namespace mlaserve::ops::sm90::mha {

// mha_prefill_sm90_kernel: one CTA per (head, 128-row query block), 1-D grid in the order of
// heuristics.h (heads_per_group).
struct MhaPrefillParams {
  CUtensorMap q_map;        // q as 3-D [Tq][n][192] bf16, boxes of 64 channels x 1 head x 128 rows,
                            // 128-byte swizzle; rows past Tq read as zeros
  CUtensorMap k_map;        // k as [Tk][n][192], the same boxes
  CUtensorMap v_map;        // v as [Tk][n][128], the same boxes
  __nv_bfloat16* out;       // [Tq, n, 128]
  float* lse;               // [Tq, n] natural log
  uint8_t* out_q;           // [Tq, n * 128] e4m3: out quantised, written instead of out
                            // (AttentionFp8Output), or null
  float* out_scales;        // [Tq, n] their scales, one a (token, head)
  float amax_floor;         // the quantiser's (ActQuantParams)
  int32_t ue8m0;            // 1: the scales rounded up to powers of two
  int32_t tq;               // query tokens
  int32_t tk;               // key tokens (>= 1; Tk = 0 goes to mha_empty_sm90_kernel)
  int32_t n_heads;          // n
  int32_t num_m_blocks;     // ceil(Tq / kBlockM)
  int32_t heads_per_group;  // heads whose CTAs are interleaved in the grid (heuristics.h)
  int32_t causal;           // 1: query i sees keys 0 .. Tk - Tq + i; 0: every key
  float scale_log2;         // softmax_scale * log2(e): scores go through exp2
};

// mha_empty_sm90_kernel: attention over no keys (non-causal, Tk = 0): out = 0, lse = -inf.
struct MhaEmptyParams {
  __nv_bfloat16* out;  // [rows, 128]
  float* lse;          // [rows]
  int64_t rows;        // Tq * n
};

}  // namespace mlaserve::ops::sm90::mha
