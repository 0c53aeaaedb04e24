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
// Launched with programmatic dependent launch (pdl.cuh). Before grid_dependency_wait() a warp
// issues the weight loads of its first step into registers (every weight byte of the call when
// one step covers K: K <= 8192 below 8 tokens, K <= 4096 at 8) and prefetches the rest of its
// rows into L2, so the first trip to HBM overlaps the end of the kernel before it instead of
// following it. That is safe because no kernel of a step writes a weight; x, which the kernel
// before writes, is read only after the wait. Then the CTA lets the next kernel launch, and each
// step multiplies (the first with the registers loaded before the wait): the same loads and FMAs
// in the same order as a kernel that loads after the wait, so the results are the same bits.
// Also before the wait, the CTAs pull the call's L2 prefetch regions (ops/l2_prefetch.h: weights of
// later kernels) into L2, one prefetch.global.L2 of a 128-byte line a thread, spread over the
// grid: per-thread prefetches, not the bulk copy engine's (cp.async.bulk.prefetch), which would
// queue them ahead of a TMA copy of a kernel sharing the SM (bench/NOTES-engine.md, s70).
//
// Requirements (checked by the launch code, which otherwise leaves the call to cuBLASLt): K % 8
// == 0 and x, W 16-byte aligned, so that a vector never straddles the end of a row.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/reduce.cuh"
#include "ops/cuda/vec.cuh"
#include "ops/l2_prefetch.h"

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
  // L2 prefetch regions (ops/l2_prefetch.h), bytes 0 where none: every CTA a share, before its wait.
  const char* prefetch[kMaxL2Prefetches] = {};
  uint32_t prefetch_bytes[kMaxL2Prefetches] = {};
};

// This thread's lines of p's L2 prefetch regions: line l of a region (128 bytes) by the grid's
// thread l, l + grid threads, ...
template <typename OutT>
__device__ __forceinline__ void gemv_prefetch_regions(const GemvParams<OutT>& p) {
  const uint32_t thread = blockIdx.x * blockDim.x + threadIdx.x, threads = gridDim.x * blockDim.x;
#pragma unroll
  for (size_t i = 0; i < kMaxL2Prefetches; ++i) {
    const uint32_t lines = (p.prefetch_bytes[i] + 127u) / 128u;
    for (uint32_t l = thread; l < lines; l += threads) {
      asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p.prefetch[i] + size_t{l} * 128u) : "memory");
    }
  }
}

// CTAs an SM the kernel's registers must allow (its launch bound): those of the kernel that loaded
// its weights after the wait (40-146 registers), which loading before it would otherwise lower
// (48-181 registers, e.g. one token at K <= 2048, V2-Lite's q_proj, kv_a, o_proj, router and
// shared gate_up: 5 CTAs an SM instead of 6, so q_proj's 768 CTAs no longer all fit the H200's
// 132 SMs at once to issue their loads while the kernel before runs). No spills (ptxas -v); the
// one exception, 3-4 tokens at K > 4096 (the dense MLP's down), would spill at 2 and takes 1.
template <int kT, int kUnroll>
inline constexpr int kGemvMinCtasPerSm = kT == 1 ? (kUnroll == 1 ? 6 : kUnroll == 2 ? 4 : 2)
                                         : kT == 2 ? (kUnroll == 1 ? 4 : kUnroll == 2 ? 3 : 2)
                                         : kT == 4 ? (kUnroll == 1 ? 3 : kUnroll == 2 ? 2 : 1)
                                         : kUnroll == 1 ? 2 : 1;

// The work of one CTA (blockIdx.x) of linear_gemv_bf16_kernel below, for kernels that do more
// after it (moe_route_gather.cuh): every thread of the CTA calls it; it waits for the kernel
// before (grid_dependency_wait) and lets the next one launch, as the note at the top says.
template <int kT, int kUnroll, typename OutT>
__device__ __forceinline__ void linear_gemv_bf16_cta(const GemvParams<OutT>& p) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t row0 = int64_t{blockIdx.x} * kGemvRows;
  constexpr int kStepChunks = kGemvWarps * kUnroll;  // chunks of K per step of the CTA
  // Only gemv_unroll's largest step for kT ever leaves K to a second step.
  constexpr bool kMaxUnroll = kUnroll == (kT >= 8 ? 2 : kGemvMaxUnroll);
  const int chunks = (p.k + kGemvChunk - 1) / kGemvChunk;

  // This lane's vectors of weight row r are w_lane[r][32 c] for chunks c (rows past N read row
  // N - 1, never stored): one pointer a row, computed once for every step.
  const uint4* w_lane[kGemvRows];
#pragma unroll
  for (int r = 0; r < kGemvRows; ++r) {
    const int64_t row = row0 + r < p.n ? row0 + r : p.n - 1;
    w_lane[r] = reinterpret_cast<const uint4*>(p.w + row * p.k) + lane;
  }
  // The weight vectors of the step whose first chunk is c0: kUnroll chunks x kGemvRows rows,
  // every load issued before the first FMA; zeros past K.
  const auto load_weights = [&](int c0, uint4 (&wv)[kUnroll][kGemvRows]) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = c0 + u * kGemvWarps;
      const bool in_k = int64_t{c} * kGemvChunk + lane * 8 < p.k;
#pragma unroll
      for (int r = 0; r < kGemvRows; ++r) wv[u][r] = in_k ? __ldcs(w_lane[r] + c * 32) : make_uint4(0, 0, 0, 0);
    }
  };

  // Weights only, before the wait (see the note at the top): the first step's loads, then an L2
  // prefetch of what later steps read (K past kStepChunks chunks: the dense MLP's down, 8 tokens
  // at K > 4096).
  uint4 wv[kUnroll][kGemvRows];
  load_weights(warp, wv);
  if (kMaxUnroll && threadIdx.x < kGemvRows && row0 + threadIdx.x < p.n && chunks > kStepChunks) {
    const int64_t rest = int64_t{kStepChunks} * kGemvChunk;  // a multiple of 8 values: 16-byte aligned
    prefetch_l2(p.w + (row0 + threadIdx.x) * p.k + rest, static_cast<uint32_t>(p.k - rest) * 2);
  }
  gemv_prefetch_regions(p);
  grid_dependency_wait();
  launch_dependents();

  float acc[kGemvRows][kT];
#pragma unroll
  for (int r = 0; r < kGemvRows; ++r) {
#pragma unroll
    for (int j = 0; j < kT; ++j) acc[r][j] = 0.0f;
  }
  for (int c0 = warp; c0 < chunks; c0 += kStepChunks) {
    if (c0 != warp) load_weights(c0, wv);  // the first step's have been in flight since before the wait
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

  float sum;
  if (gemv_cta_sum<kGemvWarps, kGemvRows, kT>(acc, sum)) {
    const int r = threadIdx.x / kT, j = threadIdx.x % kT;
    const int64_t row = row0 + r;
    if (row < p.n && j < p.t) {
      float v[1] = {sum};
      store_vec<1>(p.out + int64_t{j} * p.n + row, v);
    }
  }
}

// grid ceil(N / kGemvRows), block kGemvThreads, launched with launch_programmatic.
template <int kT, int kUnroll, typename OutT>
__global__ void __launch_bounds__(kGemvThreads, (kGemvMinCtasPerSm<kT, kUnroll>))
    linear_gemv_bf16_kernel(GemvParams<OutT> p) {
  linear_gemv_bf16_cta<kT, kUnroll>(p);
}

// Host side: calls f(std::integral_constant<int, kT>{}, std::integral_constant<int, kUnroll>{})
// with the instantiation that runs T tokens (1 <= T <= kGemvMaxTokens) over K input channels.
template <typename F>
void gemv_dispatch(int64_t t, int64_t k, F&& f) {
  const auto tokens = [&](auto kt) {
    constexpr int kT = decltype(kt)::value;
    switch (gemv_unroll(k, kT)) {
      case 1: return f(kt, std::integral_constant<int, 1>{});
      case 2: return f(kt, std::integral_constant<int, 2>{});
      default:
        if constexpr (kT < 8) return f(kt, std::integral_constant<int, 4>{});
        MLA_FAIL("gemv_dispatch: no 4-chunk step for {} tokens", kT);
    }
  };
  if (t <= 1) return tokens(std::integral_constant<int, 1>{});
  if (t <= 2) return tokens(std::integral_constant<int, 2>{});
  if (t <= 4) return tokens(std::integral_constant<int, 4>{});
  tokens(std::integral_constant<int, 8>{});
}

}  // namespace mlaserve::ops::gpu
