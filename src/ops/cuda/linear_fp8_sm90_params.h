// Launch parameters of the sm90 swap-AB FP8 GEMM (linear_fp8_sm90.cuh): one plain struct passed
// by value (__grid_constant__), every pointer to device memory. Symbols of ops/linear_fp8.h:
// T tokens, N output channels, K input channels, G = ceil(K/128) scale groups.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>

#include <cstdint>

namespace mlaserve::ops::sm90_fp8 {

inline constexpr int kWgRows = 64;    // weight rows per consumer warpgroup (wgmma M)
inline constexpr int kGroup = 128;    // K per pipeline stage: one scale group, 128 fp8 bytes

struct SwapAbParams {
  CUtensorMap w_map;        // w_q [N, K] as u8, boxes of 128 channels x w_box_rows, 128-byte swizzle
                            // (w_box_rows = min(64·WGS, N))
  CUtensorMap x_map;        // x_q [T, K] as u8, boxes of 128 channels x x_box_rows, 128-byte swizzle
  CUtensorMap x_tail_map;   // the same in boxes of T - (t_tiles - 1)·BN rows, for the last of several
                            // token tiles when BN does not divide T (tail_stage_bytes != 0): a box
                            // past T would be zero-filled by the TMA, which costs the copies time
  const float* x_scales;    // [T, G] activation group multipliers
  const float* w_scales;    // [ceil(N/128), G] weight block multipliers
  void* out;                // [T, N] bf16, or f32 when out_f32
  int32_t t;                // T
  int32_t n;                // N
  int32_t g;                // G
  int32_t t_tiles;          // ceil(T / BN); tile i is weight rows (i / t_tiles)·64·WGS, tokens (i % t_tiles)·BN
  int32_t tiles;            // n_tiles · t_tiles
  uint32_t stage_bytes;     // bytes one stage's two copies deliver: 128 x (w_box_rows + x_box_rows)
  uint32_t tail_stage_bytes;  // the same with x_tail_map's box; 0: no tail box (every tile uses x_map)
  bool out_f32;             // out holds the fp32 totals unrounded (tensor-parallel partial sums)
};

}  // namespace mlaserve::ops::sm90_fp8
