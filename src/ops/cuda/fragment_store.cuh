// Row stores of wgmma accumulator fragments, 16 bytes a lane. In an m64nN fp32 accumulator, lane
// l of a warp holds columns 8j + 2(l % 4) and + 1 of its rows for each column block j: stored as
// they are, that is one 4-byte store (bf16 pair) a block, each warp store 8 rows x 16 bytes, and
// at a tile's end a thread's 64 of them queue up on the SM's store path (the MLA seesaw's piece end
// took 5,000-10,000 cycles so, bench/NOTES-mla-decode.md). So each quad first transposes the words
// of four blocks, and each lane then stores 16 contiguous bytes.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/swiglu.cuh"

namespace mlaserve::ops::gpu {

// Lane q's w[t] becomes lane t's w[q], over the lanes of each quad (shfl.xor 2, then 1). Selects,
// not indices: w stays in registers. Every lane of the warp calls it.
__device__ __forceinline__ void quad_transpose(uint32_t (&w)[4], int lane) {
  const bool hi = lane & 2, odd = lane & 1;
  uint32_t r0 = __shfl_xor_sync(0xffffffffu, hi ? w[0] : w[2], 2);
  uint32_t r1 = __shfl_xor_sync(0xffffffffu, hi ? w[1] : w[3], 2);
  w[0] = hi ? r0 : w[0];
  w[1] = hi ? r1 : w[1];
  w[2] = hi ? w[2] : r0;
  w[3] = hi ? w[3] : r1;
  r0 = __shfl_xor_sync(0xffffffffu, odd ? w[0] : w[1], 1);
  r1 = __shfl_xor_sync(0xffffffffu, odd ? w[2] : w[3], 1);
  w[0] = odd ? r0 : w[0];
  w[1] = odd ? w[1] : r0;
  w[2] = odd ? r1 : w[2];
  w[3] = odd ? w[3] : r1;
}

// The bits of bf16(a), bf16(b) as one word (a in the low half).
__device__ __forceinline__ uint32_t bf16x2_bits(float a, float b) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// 32 columns of one row: w[t] holds columns 8t + 2(lane % 4) and + 1 (bf16x2_bits); lane q stores
// columns 8q .. 8q + 7 as 16 bytes at dst + 8q. Every lane of the warp calls it (the shuffles);
// dst null: nothing stored.
__device__ __forceinline__ void store_cols32_bf16(__nv_bfloat16* dst, uint32_t (&w)[4], int lane) {
  quad_transpose(w, lane);
  if (dst != nullptr) *reinterpret_cast<uint4*>(dst + 8 * (lane % 4)) = make_uint4(w[0], w[1], w[2], w[3]);
}

// Row h (0: the fragment's row r, 1: r + 8) of an m64n(8·kBlocks) fp32 accumulator fragment
// (acc[4j + 2h + e]: column 8j + 2(lane % 4) + e) as bf16 at dst: the columns as they are, or with
// kSwiGlu kBlocks / 2 blocks of silu(gate)·up, gate block j and up block j + kBlocks / 2 (the
// weight tile's gate rows, then the up rows of the same channels). Every lane of the warp calls
// it; dst null: nothing stored.
template <int kBlocks, bool kSwiGlu, int kN>
__device__ __forceinline__ void store_fragment_row_bf16(__nv_bfloat16* dst, const float (&acc)[kN], int h, int lane) {
  constexpr int kOut = kSwiGlu ? kBlocks / 2 : kBlocks;  // column blocks stored
  static_assert(kOut % 4 == 0 && 4 * kBlocks <= kN, "whole groups of four blocks in the fragment");
#pragma unroll
  for (int q = 0; q < kOut / 4; ++q) {
    uint32_t w[4];
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      const int j = 4 * q + t;
      const float x0 = acc[4 * j + 2 * h], x1 = acc[4 * j + 2 * h + 1];
      if constexpr (kSwiGlu) {
        const int u = j + kOut;
        w[t] = bf16x2_bits(swiglu(x0, acc[4 * u + 2 * h]), swiglu(x1, acc[4 * u + 2 * h + 1]));
      } else {
        w[t] = bf16x2_bits(x0, x1);
      }
    }
    store_cols32_bf16(dst == nullptr ? nullptr : dst + 32 * q, w, lane);
  }
}

}  // namespace mlaserve::ops::gpu
