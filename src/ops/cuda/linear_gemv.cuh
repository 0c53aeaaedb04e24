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
// chunks w, w + kGemvWarps, ..., so each weight row is read once, 16 bytes per lane per row in
// flight, with streaming loads (the weight is not reused within the step). x rows come through
// L1/L2 (T·K·2 bytes, re-read by every CTA). Each lane keeps kGemvRows x kT fp32 partial sums;
// warps reduce them by shuffles, then across warps through shared memory, and kGemvRows x kT
// threads write the outputs, rounded once (bf16) or not (f32). kT (1, 2, 4 or 8) is the token
// count rounded up; rows of x past T are not read and their outputs not written. Requirements
// (checked by the launch code, which otherwise leaves the call to cuBLASLt): K % 8 == 0 and x, W
// 16-byte aligned, so that a vector never straddles the end of a row.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/reduce.cuh"
#include "ops/cuda/vec.cuh"

namespace mlaserve::ops::gpu {

inline constexpr int kGemvMaxTokens = 8;
inline constexpr int kGemvWarps = 8;           // warps per CTA, each over a share of K
inline constexpr int kGemvThreads = 32 * kGemvWarps;
inline constexpr int kGemvRows = 4;            // output channels per CTA
inline constexpr int kGemvChunk = 32 * 8;      // K values per warp and step: 32 lanes x 8 bf16

template <typename OutT>
struct GemvParams {
  const __nv_bfloat16* x;  // [T, K], rows K apart
  const __nv_bfloat16* w;  // [N, K], rows K apart
  OutT* out;               // [T, N]
  int32_t t;               // tokens, 1 <= T <= kT
  int32_t n;               // output channels
  int32_t k;               // input channels, a multiple of 8
};

// grid ceil(N / kGemvRows), block kGemvThreads.
template <int kT, typename OutT>
__global__ void __launch_bounds__(kGemvThreads) linear_gemv_bf16_kernel(GemvParams<OutT> p) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t row0 = int64_t{blockIdx.x} * kGemvRows;
  float acc[kGemvRows][kT];
#pragma unroll
  for (int r = 0; r < kGemvRows; ++r) {
#pragma unroll
    for (int j = 0; j < kT; ++j) acc[r][j] = 0.0f;
  }
  const int chunks = (p.k + kGemvChunk - 1) / kGemvChunk;
  for (int c = warp; c < chunks; c += kGemvWarps) {
    const int64_t col = int64_t{c} * kGemvChunk + lane * 8;
    if (col >= p.k) continue;  // the last chunk of a K that is not a multiple of 256
    uint4 wv[kGemvRows];
#pragma unroll
    for (int r = 0; r < kGemvRows; ++r) {
      const int64_t row = row0 + r < p.n ? row0 + r : p.n - 1;  // rows past N: read a valid one, never stored
      wv[r] = __ldcs(reinterpret_cast<const uint4*>(p.w + row * p.k + col));
    }
    float xv[kT][8];
#pragma unroll
    for (int j = 0; j < kT; ++j) {
      if (j < p.t) {
        load_vec<8>(p.x + int64_t{j} * p.k + col, xv[j]);
      } else {
        fill_vec<8>(xv[j], 0.0f);
      }
    }
#pragma unroll
    for (int r = 0; r < kGemvRows; ++r) {
      const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&wv[r]);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 wf = __bfloat1622float2(h[e]);
#pragma unroll
        for (int j = 0; j < kT; ++j) acc[r][j] = fmaf(wf.y, xv[j][2 * e + 1], fmaf(wf.x, xv[j][2 * e], acc[r][j]));
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
