// The MLA absorption matmuls (ops/mla_absorb.h) for a few tokens: per-head GEMVs that read
// W_UK[h] and W_UV[h] in place from kv_b_proj's layout. Device code; launch code:
// mla_absorb_gemv.cu, chosen by mla_absorb_cuda.cc for T <= kAbsorbGemvMaxTokens.
//
// Symbols: T tokens (kT: T rounded up to 1, 2, 4 or 8), n heads, dn = 128 nope channels, dr = 64
// rope channels, dv = 128 value channels, dc = 512 latent channels, rph = dn + dv rows of w_kv_b
// per head. Both products read each head's 128 KB slice once per call (2 MB at V2-Lite's 16
// heads, 16 MB at V3's 128); at decode sizes they are bound by HBM latency and bandwidth, where
// the cuBLASLt batched GEMMs they replace took 4.4 and 4.6 us at one token, plus a separate 2-D
// copy of q_pe (bench/NOTES-engine.md, 2026-11-28 15:25).
//
// Absorb, q_lat[t, h, c] = Σ_d q[t, h, d] · W_UK[h][d, c] (d < dn), a column-wise product:
//   CTA (column block of kAbsorbCols = 128, head h), kAbsorbThreads = 16 column vectors x 16
//   row groups. Thread (v, g) owns columns c0 + 8v .. +8 and rows d = g, g + 16, ...: it issues
//   its kAbsorbRowsInFlight 16-byte weight loads (every row it owns at dn = 128) before the
//   first FMA, multiplies by the scalar q[t, h, d] (the same for the 16 threads of a row group:
//   one L1 broadcast) into kT x 8 fp32 sums. The 16 row groups are summed through shared
//   memory, one token at a time, in group order, and written rounded once to bf16. The CTAs of
//   column block 0 also copy q_pe into q_abs's last dr channels.
// Up-projection, o[t, h, j] = Σ_c W_UV[h][j, c] · o_lat[t, h, c] (c < dc), row-wise:
//   CTA (kUpRows = 16 rows of head h), 8 warps of kUpRowsPerWarp = 2 rows; lane l takes columns
//   8l + 256s for chunks s, with both rows' loads of kUpChunks chunks in flight before the FMAs;
//   o_lat is read as 16-byte vectors (L1/L2: every CTA of the head reads the same 1 KB a token).
//   A warp-shuffle sum per (row, token), written by lane 0 rounded once to bf16.
//
// Launched with programmatic dependent launch (pdl.cuh). Before grid_dependency_wait() a thread
// issues its first step's weight loads into registers (all of the CTA's slice at DeepSeek's
// shapes: dn = 128 rows for the absorb, dc = 512 columns for the up-projection; anything past
// the first step is prefetched into L2), so the first trip to HBM overlaps the kernel before it
// (the query's RoPE; mla_decode, which lets its dependents launch early). Safe because no kernel
// of a step writes w_kv_b; q and o_lat, which the kernel before writes, are read after the wait.
// The loads and FMAs are those of a kernel that loads after the wait, in the same order: the
// same bits.
//
// Requirements (checked by the launch code, which otherwise keeps cuBLASLt): dc % 8 == 0, w_kv_b
// and o_lat 16-byte aligned, so that vectors and prefetches never straddle a row.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/mla_absorb_gemv.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/reduce.cuh"
#include "ops/cuda/vec.cuh"

namespace mlaserve::ops::gpu {

inline constexpr int kAbsorbColVecs = 16;                      // 8-column vectors per absorb CTA
inline constexpr int kAbsorbCols = 8 * kAbsorbColVecs;        // 128 columns of q_lat per CTA
inline constexpr int kAbsorbRowGroups = 16;                    // threads along d per column vector
inline constexpr int kAbsorbThreads = kAbsorbColVecs * kAbsorbRowGroups;
inline constexpr int kAbsorbRowsInFlight = 8;                  // weight rows a thread loads before its FMAs
inline constexpr int kUpRowsPerWarp = 2;
inline constexpr int kUpWarps = 8;
inline constexpr int kUpRows = kUpRowsPerWarp * kUpWarps;      // rows of W_UV per CTA
inline constexpr int kUpThreads = 32 * kUpWarps;
inline constexpr int kUpChunks = 2;                            // 256-column chunks a lane loads before its FMAs

// grid (ceil(dc / kAbsorbCols), n), block kAbsorbThreads; launched with launch_programmatic.
template <int kT>
__global__ void __launch_bounds__(kAbsorbThreads) mla_absorb_gemv_kernel(MlaAbsorbGemvParams p) {
  __shared__ float partial[kAbsorbRowGroups][kAbsorbCols];
  const int v = threadIdx.x % kAbsorbColVecs, g = threadIdx.x / kAbsorbColVecs;
  const int h = blockIdx.y, c0 = blockIdx.x * kAbsorbCols, c = c0 + 8 * v;
  const __nv_bfloat16* w_uk = p.w + int64_t{h} * p.rph * p.dc;  // [dn, dc]
  constexpr int kStepRows = kAbsorbRowGroups * kAbsorbRowsInFlight;  // rows d of one step of the CTA

  // This thread's weight vectors of the step whose first row is d0 (its rows d0, d0 + 16, ...),
  // every load issued before the first FMA; zeros past dn or dc.
  const auto load_weights = [&](int d0, uint4 (&wv)[kAbsorbRowsInFlight]) {
#pragma unroll
    for (int r = 0; r < kAbsorbRowsInFlight; ++r) {
      const int d = d0 + r * kAbsorbRowGroups;
      wv[r] = d < p.dn && c < p.dc ? __ldcs(reinterpret_cast<const uint4*>(w_uk + int64_t{d} * p.dc + c))
                                   : make_uint4(0, 0, 0, 0);
    }
  };

  // Weights only, before the wait (the note at the top): the first step, and an L2 prefetch of
  // the CTA's rows past it (none at dn = 128).
  uint4 wv[kAbsorbRowsInFlight];
  load_weights(g, wv);
  if (threadIdx.x + kStepRows < p.dn) {
    const int d = threadIdx.x + kStepRows;
    prefetch_l2(w_uk + int64_t{d} * p.dc + c0, static_cast<uint32_t>(min(kAbsorbCols, p.dc - c0)) * 2);
  }
  grid_dependency_wait();
  launch_dependents();

  float acc[kT][8];
#pragma unroll
  for (int j = 0; j < kT; ++j) {
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[j][e] = 0.0f;
  }
  const int64_t q_row = int64_t{p.n} * (p.dn + p.dr);  // elements between tokens of q
  for (int d0 = g; d0 < p.dn; d0 += kStepRows) {
    if (d0 != g) load_weights(d0, wv);  // the first step's have been in flight since before the wait
#pragma unroll
    for (int r = 0; r < kAbsorbRowsInFlight; ++r) {
      const int d = d0 + r * kAbsorbRowGroups;
      if (d >= p.dn) break;
      float wf[8];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 pair = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(&wv[r])[e]);
        wf[2 * e] = pair.x;
        wf[2 * e + 1] = pair.y;
      }
#pragma unroll
      for (int j = 0; j < kT; ++j) {
        const float x = j < p.t ? __bfloat162float(p.q[j * q_row + int64_t{h} * (p.dn + p.dr) + d]) : 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[j][e] = fmaf(wf[e], x, acc[j][e]);
      }
    }
  }

  const int64_t out_row = int64_t{p.n} * (p.dc + p.dr);  // elements between tokens of q_abs
#pragma unroll
  for (int j = 0; j < kT; ++j) {
    if (j >= p.t) break;
#pragma unroll
    for (int e = 0; e < 8; ++e) partial[g][8 * v + e] = acc[j][e];
    __syncthreads();
    if (threadIdx.x < kAbsorbCols && c0 + threadIdx.x < p.dc) {
      float sum = 0.0f;
#pragma unroll
      for (int r = 0; r < kAbsorbRowGroups; ++r) sum += partial[r][threadIdx.x];
      p.q_abs[j * out_row + int64_t{h} * (p.dc + p.dr) + c0 + threadIdx.x] = __float2bfloat16_rn(sum);
    }
    __syncthreads();  // partial is rewritten for the next token
  }
  if (blockIdx.x == 0) {  // q_pe -> q_abs[t, h, dc ..]
    for (int i = threadIdx.x; i < p.t * p.dr; i += kAbsorbThreads) {
      const int j = i / p.dr, k = i % p.dr;
      p.q_abs[j * out_row + int64_t{h} * (p.dc + p.dr) + p.dc + k] =
          p.q[j * q_row + int64_t{h} * (p.dn + p.dr) + p.dn + k];
    }
  }
}

// grid (ceil(dv / kUpRows), n), block kUpThreads; launched with launch_programmatic.
template <int kT>
__global__ void __launch_bounds__(kUpThreads) mla_up_gemv_kernel(MlaUpGemvParams p) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int h = blockIdx.y, dv = p.rph - p.dn;
  const int row0 = blockIdx.x * kUpRows + warp * kUpRowsPerWarp;  // this warp's first row of W_UV[h]
  const __nv_bfloat16* w_uv = p.w + (int64_t{h} * p.rph + p.dn) * p.dc;  // [dv, dc]
  constexpr int kStepCols = 32 * 8 * kUpChunks;  // columns c of one step of a warp

  // This lane's weight vectors of the step whose first column is cs (columns cs + 256s, both
  // rows), every load issued before the first FMA; zeros past dc, rows past dv read a valid one
  // (never stored).
  const auto load_weights = [&](int cs, uint4 (&wv)[kUpChunks][kUpRowsPerWarp]) {
#pragma unroll
    for (int s = 0; s < kUpChunks; ++s) {
      const int col = cs + s * 32 * 8;
#pragma unroll
      for (int r = 0; r < kUpRowsPerWarp; ++r) {
        const int row = min(row0 + r, dv - 1);
        wv[s][r] = col < p.dc ? __ldcs(reinterpret_cast<const uint4*>(w_uv + int64_t{row} * p.dc + col))
                              : make_uint4(0, 0, 0, 0);
      }
    }
  };

  // Weights only, before the wait (the note at the top): the first step, and an L2 prefetch of
  // the CTA's columns past it (none at dc = 512).
  uint4 wv[kUpChunks][kUpRowsPerWarp];
  load_weights(lane * 8, wv);
  if (threadIdx.x < kUpRows && blockIdx.x * kUpRows + threadIdx.x < dv && p.dc > kStepCols) {
    prefetch_l2(w_uv + int64_t{blockIdx.x * kUpRows + threadIdx.x} * p.dc + kStepCols,
                static_cast<uint32_t>(p.dc - kStepCols) * 2);
  }
  grid_dependency_wait();
  launch_dependents();

  float acc[kUpRowsPerWarp][kT];
#pragma unroll
  for (int r = 0; r < kUpRowsPerWarp; ++r) {
#pragma unroll
    for (int j = 0; j < kT; ++j) acc[r][j] = 0.0f;
  }
  const int64_t x_row = int64_t{p.n} * p.dc;  // elements between tokens of o_lat
  for (int cs = lane * 8; cs < p.dc; cs += kStepCols) {
    if (cs != lane * 8) load_weights(cs, wv);  // the first step's have been in flight since before the wait
#pragma unroll
    for (int s = 0; s < kUpChunks; ++s) {
      const int col = cs + s * 32 * 8;
      if (col >= p.dc) break;
#pragma unroll
      for (int j = 0; j < kT; ++j) {
        const uint4 xr = j < p.t ? *reinterpret_cast<const uint4*>(p.o_lat + j * x_row + int64_t{h} * p.dc + col)
                                 : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float2 xf = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(&xr)[e]);
#pragma unroll
          for (int r = 0; r < kUpRowsPerWarp; ++r) {
            const float2 wf = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(&wv[s][r])[e]);
            acc[r][j] = fmaf(wf.y, xf.y, fmaf(wf.x, xf.x, acc[r][j]));
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kUpRowsPerWarp; ++r) {
#pragma unroll
    for (int j = 0; j < kT; ++j) {
      const float sum = warp_sum(acc[r][j]);
      if (lane == 0 && j < p.t && row0 + r < dv) {
        p.o[j * int64_t{p.n} * dv + int64_t{h} * dv + row0 + r] = __float2bfloat16_rn(sum);
      }
    }
  }
}

}  // namespace mlaserve::ops::gpu
