// linear for a few tokens on the GPU (the GEMV path of linear_cuda, ops/linear.h): y [T, N] =
// x [T, K] · W [N, K]ᵀ with bf16 x and W, T <= kGemvMaxTokens, fp32 accumulation.
//
// Why: at decode batch sizes a linear layer is one pass over its weight, bound by HBM, and the
// small ones (kv_a 576 x 2048, the router 64 x 2048, o_proj 2048 x 2048) by latency. cuBLASLt
// runs them as one to 88 CTAs of a 64 x 8 tile (plus a split-K reduction kernel for the shared
// experts' down projection): 6-10 us each on an H200 where the bytes take 0.5-3 us
// (bench/NOTES-engine.md, the ncu table of 2026-11-28 15:00).
//
// Design: one CTA of kGemvWarps warps owns kGemvRows consecutive output channels (weight rows).
// K is cut into chunks of 256 values (32 lanes x one 16-byte vector of 8 bf16); warp w takes
// chunks w, w + kGemvWarps, ..., kUnroll of them per step, so each weight row is read once and a
// lane has kUnroll x kGemvRows independent 16-byte streaming loads in flight (all issued before
// the first FMA: K = 2816 and 7168 take one step instead of two to four dependent trips to HBM).
// x rows come through L1/L2 (T·K·2 bytes, re-read by every CTA), kept as raw bf16 and widened
// one pair at a time. Each lane keeps kGemvRows x kT fp32 partial sums; warps reduce them by
// shuffles, then across warps through shared memory, and kGemvRows x kT threads write the
// outputs, rounded once (bf16) or not (f32). kT (1, 2, 4 or 8) is the token count rounded up;
// rows of x past T are not read and their outputs not written.
//
// Launched with programmatic dependent launch (pdl.cuh): before grid_dependency_wait() a CTA only
// prefetches its kGemvRows weight rows into L2, so its first trip to HBM overlaps the end of the
// kernel before it; then it waits, lets the next kernel launch, and loads.
//
// Requirements (checked by the launch code, which otherwise leaves the call to cuBLASLt): K % 8
// == 0 and x, W 16-byte aligned, so that a vector never straddles the end of a row.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/pdl.cuh"
#include "ops/cuda/reduce.cuh"
#include "ops/cuda/vec.cuh"

namespace mlaserve::ops::gpu {

inline constexpr int kGemvMaxTokens = 8;
inline constexpr int kGemvWarps = 8;           // warps per CTA, each over a share of K
inline constexpr int kGemvThreads = 32 * kGemvWarps;
inline constexpr int kGemvRows = 4;            // output channels per CTA
inline constexpr int kGemvChunk = 32 * 8;      // K values per warp and chunk: 32 lanes x 8 bf16
inline constexpr int kGemvMaxUnroll = 4;       // chunks per warp and step (kUnroll: 1, 2 or 4)

// Chunks per warp and step for K and kT: enough that one step covers K (up to 4 chunks a warp,
// K <= 8192), fewer for 8 tokens (their x vectors and sums take the registers).
inline constexpr int gemv_unroll(int64_t k, int kt) {
  const int64_t steps = (k + int64_t{kGemvChunk} * kGemvWarps - 1) / (int64_t{kGemvChunk} * kGemvWarps);
  const int cap = kt >= 8 ? 2 : kGemvMaxUnroll;
  return steps <= 1 ? 1 : (steps <= 2 || cap == 2) ? 2 : 4;
}

template <typename OutT>
struct GemvParams {
  const __nv_bfloat16* x;  // [T, K], rows K apart
  const __nv_bfloat16* w;  // [N, K], rows K apart
  OutT* out;               // [T, N]
  int32_t t;               // tokens, 1 <= T <= kT
  int32_t n;               // output channels
  int32_t k;               // input channels, a multiple of 8
};

// grid ceil(N / kGemvRows), block kGemvThreads, launched with launch_programmatic.
template <int kT, int kUnroll, typename OutT>
__global__ void __launch_bounds__(kGemvThreads) linear_gemv_bf16_kernel(GemvParams<OutT> p) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t row0 = int64_t{blockIdx.x} * kGemvRows;
  if (threadIdx.x < kGemvRows && row0 + threadIdx.x < p.n) {  // warm L2 while the kernel before ends
    prefetch_l2(p.w + (row0 + threadIdx.x) * p.k, static_cast<uint32_t>(p.k) * 2);
  }
  grid_dependency_wait();
  launch_dependents();

  float acc[kGemvRows][kT];
#pragma unroll
  for (int r = 0; r < kGemvRows; ++r) {
#pragma unroll
    for (int j = 0; j < kT; ++j) acc[r][j] = 0.0f;
  }
  const int chunks = (p.k + kGemvChunk - 1) / kGemvChunk;
  for (int c0 = warp; c0 < chunks; c0 += kGemvWarps * kUnroll) {
    uint4 wv[kUnroll][kGemvRows];  // every load of the step issued before the first FMA
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t col = int64_t{c0 + u * kGemvWarps} * kGemvChunk + lane * 8;
#pragma unroll
      for (int r = 0; r < kGemvRows; ++r) {
        const int64_t row = row0 + r < p.n ? row0 + r : p.n - 1;  // rows past N: read a valid one, never stored
        wv[u][r] = col < p.k ? __ldcs(reinterpret_cast<const uint4*>(p.w + row * p.k + col)) : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t col = int64_t{c0 + u * kGemvWarps} * kGemvChunk + lane * 8;
      if (col >= p.k) continue;  // past K: the last chunks of a step, or of a K not a multiple of 256
      uint4 xr[kT];  // [kT] x vectors, raw bf16
#pragma unroll
      for (int j = 0; j < kT; ++j) {
        xr[j] = j < p.t ? *reinterpret_cast<const uint4*>(p.x + int64_t{j} * p.k + col) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float2 xf[kT];
#pragma unroll
        for (int j = 0; j < kT; ++j) xf[j] = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(&xr[j])[e]);
#pragma unroll
        for (int r = 0; r < kGemvRows; ++r) {
          const float2 wf = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(&wv[u][r])[e]);
#pragma unroll
          for (int j = 0; j < kT; ++j) acc[r][j] = fmaf(wf.y, xf[j].y, fmaf(wf.x, xf[j].x, acc[r][j]));
        }
      }
    }
  }

  __shared__ float partial[kGemvWarps][kGemvRows * kT];
#pragma unroll
  for (int r = 0; r < kGemvRows; ++r) {
#pragma unroll
    for (int j = 0; j < kT; ++j) {
      const float v = warp_sum(acc[r][j]);
      if (lane == 0) partial[warp][r * kT + j] = v;
    }
  }
  __syncthreads();
  if (threadIdx.x < kGemvRows * kT) {
    const int r = threadIdx.x / kT, j = threadIdx.x % kT;
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kGemvWarps; ++w) sum += partial[w][threadIdx.x];
    const int64_t row = row0 + r;
    if (row < p.n && j < p.t) {
      float v[1] = {sum};
      store_vec<1>(p.out + int64_t{j} * p.n + row, v);
    }
  }
}

}  // namespace mlaserve::ops::gpu
