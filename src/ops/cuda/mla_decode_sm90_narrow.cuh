// MLA decode on Hopper (sm_90a): the softmax of the ring kernel (mla_decode_sm90_ring.cuh), for
// at most 16 query rows a sequence (16 heads and one token: V2-Lite, V3 under TP8). Its scores
// are S^T[64 keys x 16 rows] = K Q^T (m64n16 wgmma), so a query row is a column spread over the
// 4 warps of the warpgroup: this thread holds keys 16 w + lane / 4 (+ 8) of warp w and the 4
// columns narrow_col(0..3, lane); a column's max, and its sum at a piece's end, meet over the
// warps in shared memory ([4 warps][16 columns]). P^T goes to shared memory as the B operand of
// O^T += V^T P^T, whose accumulators hold the same columns in the same threads.
#pragma once

#include "ops/cuda/mla_decode_sm90_common.cuh"

namespace mlaserve::ops::sm90 {

// Query row (column of S^T) of this thread's state slot c (0..3): s[i] holds column slot
// 2 * (i / 4) + i % 2.
__device__ __forceinline__ int narrow_col(int c, int lane) { return 8 * (c / 2) + 2 * (lane % 4) + c % 2; }

// Over the 8 lanes that share lane % 4: a column's max or sum over a warp's 16 keys.
__device__ __forceinline__ float column_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 4));
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 8));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 16));
}
__device__ __forceinline__ float column_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 4);
  x += __shfl_xor_sync(0xffffffffu, x, 8);
  return x + __shfl_xor_sync(0xffffffffu, x, 16);
}

// The last key visible to query row (column) col of piece pc (bottom-right causal; the tile is
// the sequence's only one: tile_row0 = 0).
__device__ __forceinline__ int narrow_column_limit(const Piece& pc, int n_heads, int col) {
  return col < pc.rows ? pc.seq_len - pc.q_len + col / n_heads : pc.seq_len - 1;
}

// One block of a warpgroup's 128 threads (thread tid): the scores s masked, the online softmax of
// this thread's columns (m, l in log2 units; s becomes P^T), the columns' rescale alpha and, at a
// piece's end, their lse (to lse or partial_lse) and 1 / sum inv (0 before). A column's max and
// sum meet over the 4 warps in col_max ([4 warps][16 columns] f32, shared memory).
__device__ __forceinline__ void narrow_softmax(const MlaDecodeParams& p, const Piece& pc, const WorkItem& cur,
                                               bool masked, bool piece_ends, int tid, int lane, float* col_max,
                                               float (&s)[8], float (&m)[4], float (&l)[4], float (&alpha)[4],
                                               float (&inv)[4]) {
  const int warp = tid / 32 % 4, key0 = cur.block * 64 + 16 * warp + lane / 4;
  float mx[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
  if (masked) {  // (the limits computed here: the masked blocks are a piece's last one or two)
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int limit = narrow_column_limit(pc, p.n_heads, narrow_col(2 * (i / 4) + i % 2, lane));
      if (key0 + 8 * (i / 2 % 2) > limit) s[i] = -INFINITY;
    }
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) mx[2 * (i / 4) + i % 2] = fmaxf(mx[2 * (i / 4) + i % 2], s[i]);
#pragma unroll
  for (int c = 0; c < 4; ++c) mx[c] = column_max(mx[c]);
  if (lane < 4) {
#pragma unroll
    for (int c = 0; c < 4; ++c) col_max[16 * warp + narrow_col(c, lane)] = mx[c];
  }
  named_barrier_sync(kBarWg0, 128);
  float m_use[4], sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
  for (int c = 0; c < 4; ++c) {
    const int col = narrow_col(c, lane);
    const float bm = fmaxf(fmaxf(col_max[col], col_max[16 + col]), fmaxf(col_max[32 + col], col_max[48 + col]));
    alpha[c] = update_row_max(m[c], bm * p.scale_log2, m_use[c]);
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int c = 2 * (i / 4) + i % 2;
    s[i] = ptx::fast_exp2(fmaf(s[i], p.scale_log2, -m_use[c]));
    sum[c] += s[i];
  }
#pragma unroll
  for (int c = 0; c < 4; ++c) l[c] = l[c] * alpha[c] + sum[c];
  if (piece_ends) {  // the columns' sums over the 4 warps, lse (natural log) of this piece
    float t[4];
#pragma unroll
    for (int c = 0; c < 4; ++c) t[c] = column_sum(l[c]);
    named_barrier_sync(kBarWg0, 128);  // every warp has read the maxima
    if (lane < 4) {
#pragma unroll
      for (int c = 0; c < 4; ++c) col_max[16 * warp + narrow_col(c, lane)] = t[c];
    }
    named_barrier_sync(kBarWg0, 128);
    const MlaSeqSplit split = p.seq_splits[cur.seq];
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int col = narrow_col(c, lane);
      const float total = col_max[col] + col_max[16 + col] + col_max[32 + col] + col_max[48 + col];
      const float lse = softmax_lse_inv(m[c], total, inv[c]);
      if (warp == 0 && lane < 4 && col < pc.rows) store_piece_lse(p, split, pc, col, lse);
    }
  }
}

// P^T (this thread's 8 values of s, as narrow_softmax leaves them) into the first 16 rows of a
// [rows][64 keys] bf16 tile in the 128-byte swizzle at shared address p_tile: row = query column,
// 128 bytes of keys. 32-bit shared addresses: generic ones are 64-bit values that the compiler
// keeps live across the loop.
__device__ __forceinline__ void store_pt(uint32_t p_tile, const float (&s)[8], int warp, int lane) {
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int col = 8 * (i / 4) + 2 * (lane % 4) + i % 2, key = 16 * warp + lane / 4 + 8 * (i / 2 % 2);
    const uint32_t addr = p_tile + col * 128 + ((key / 8) ^ (col % 8)) * 16 + key % 8 * 2;
    asm volatile("st.shared.b16 [%0], %1;\n" ::"r"(addr), "h"(__bfloat16_as_ushort(__float2bfloat16_rn(s[i]))));
  }
}

}  // namespace mlaserve::ops::sm90
