// Block-FP8 W8A8 linear for a few tokens (T <= kFp8GemvMaxTokens) on the CUDA cores: the decode
// path of linear_fp8_cuda / linear_fp8_w8a8_cuda (ops/linear_fp8.h). Launch code in
// linear_fp8_gemv.cu; linear_fp8_heuristics.h says when it runs.
//
//   out[t, o] = Σ_g (Σ_{κ∈g} x_q[t, κ] · w_q[o, κ]) · x_scale[t, g] · w_scale[o / 128, g]
//
// Why: at one token a linear is one pass over its e4m3 weight, 0.1-6 MB for V2-Lite's
// projections, i.e. 0.3-1.5 us at HBM speed. The swap-AB tensor-core kernel takes 4-9 us there
// (TMA pipeline set-up, cluster split-K reduction) and the activation quantiser is one more
// launch before it: two kernels of latency per linear. This kernel is one launch that reads the
// weight once and, in its fused form, quantises the bf16 activations itself.
//
// Design: a CTA of kFp8GemvWarps warps owns kRows consecutive weight rows (one 128-row scale
// block holds them all). K is cut into chunks of 512 (32 lanes x 16 e4m3 = one 16-byte load per
// lane and row); warp w takes chunks w, w + kFp8GemvWarps, ... A lane's 16 channels lie in one
// 128-wide group (lanes 8i .. 8i + 7 share group 4·chunk + i). Per chunk a lane loads its 16 bytes
// of each of the kRows rows (streaming loads: the weight is not reused in the step), then per
// token the 16 activation codes: with kQuantize it reads 16 bf16 values of x and quantises them as
// quantize_activations_fp8_cuda does (amax over the group's 8 lanes by shuffles, max'ed with the
// floor, scale and quotients by IEEE division, RNE saturating e4m3: fp8_quant.cuh), else it reads
// x_q and the group's scale. The 16 products of each (row, token) are summed in fp32 (products of
// two e4m3 values are exact), scaled by x_scale · w_scale and added to an fp32 total: the
// reference's order up to fp32 rounding (it scales the 128-wide group sum; here each lane's 16).
// Totals are reduced over the lanes by shuffles and over the warps through shared memory; kRows x
// kT threads write them (bf16 rounded once, or f32). Tokens past T read nothing and write nothing;
// rows past N read a valid row and are not stored.
//
// Every CTA quantises the whole of x (T·K divisions) for its kRows rows: affordable while T is
// small, which is why kAuto takes this kernel only for a few tokens.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "ops/cuda/fp8_quant.cuh"
#include "ops/cuda/reduce.cuh"

namespace mlaserve::ops::gpu {

inline constexpr int kFp8GemvMaxTokens = 4;
inline constexpr int kFp8GemvWarps = 4;                 // warps per CTA, each over a share of K
inline constexpr int kFp8GemvThreads = 32 * kFp8GemvWarps;
inline constexpr int kFp8GemvRows = 8;                  // weight rows per CTA
inline constexpr int kFp8GemvChunk = 32 * 16;           // K values per warp and step
static_assert(128 % kFp8GemvRows == 0, "a CTA's rows lie in one 128-row scale block");

template <typename OutT>
struct Fp8GemvParams {
  const __nv_bfloat16* x;  // [T, K] bf16 (kQuantize), rows K apart
  const uint8_t* x_q;      // [T, K] e4m3 (otherwise)
  const float* x_scales;   // [T, G] (otherwise)
  const uint8_t* w;        // [N, K] e4m3
  const float* w_scales;   // [ceil(N/128), G]
  OutT* out;               // [T, N]
  int32_t t;               // tokens, 1 <= T <= kT
  int32_t n;               // weight rows
  int32_t k;               // input channels, a multiple of 16
  int32_t groups;          // G = ceil(K / 128)
  float amax_floor;        // the quantiser's (kQuantize)
  bool ue8m0;              // power-of-two scales (kQuantize)
};

// 16 e4m3 codes (one 16-byte vector) -> fp32 (exact).
__device__ __forceinline__ void e4m3x16_to_float(const uint4& raw, float (&v)[16]) {
  const __nv_fp8x2_storage_t* pairs = reinterpret_cast<const __nv_fp8x2_storage_t*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float2 f = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(pairs[i], __NV_E4M3)));
    v[2 * i] = f.x;
    v[2 * i + 1] = f.y;
  }
}

// Token j's 16 activation codes at channel col (as fp32) and their group's scale. Every lane of
// the warp calls it (the amax shuffles); `valid` is false for lanes past K and tokens past T.
template <bool kQuantize, typename OutT>
__device__ __forceinline__ void fp8_gemv_activations(const Fp8GemvParams<OutT>& p, int j, int64_t col, int g,
                                                     bool valid, float (&xq)[16], float& scale) {
  if constexpr (kQuantize) {
    float v[16];
    if (valid) {
      const uint4* src = reinterpret_cast<const uint4*>(p.x + int64_t{j} * p.k + col);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const uint4 raw = src[h];
        const __nv_bfloat162* b = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float2 f = __bfloat1622float2(b[i]);
          v[8 * h + 2 * i] = f.x;
          v[8 * h + 2 * i + 1] = f.y;
        }
      }
    } else {
#pragma unroll
      for (int i = 0; i < 16; ++i) v[i] = 0.0f;
    }
    scale = group_act_scale<8, 16>(v, p.amax_floor, p.ue8m0);  // the group's 8 lanes
    uint32_t codes[16];
    quantize_e4m3(v, scale, codes);
#pragma unroll
    for (int i = 0; i < 16; i += 2) {
      const auto pair = static_cast<__nv_fp8x2_storage_t>(codes[i] | codes[i + 1] << 8);
      const float2 f = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3)));
      xq[i] = f.x;
      xq[i + 1] = f.y;
    }
  } else {
    if (valid) {
      e4m3x16_to_float(*reinterpret_cast<const uint4*>(p.x_q + int64_t{j} * p.k + col), xq);
      scale = __ldg(p.x_scales + int64_t{j} * p.groups + g);
    } else {
#pragma unroll
      for (int i = 0; i < 16; ++i) xq[i] = 0.0f;
      scale = 0.0f;
    }
  }
}

// grid ceil(N / kFp8GemvRows), block kFp8GemvThreads. kT (1, 2 or 4) is T rounded up.
template <int kT, bool kQuantize, typename OutT>
__global__ void __launch_bounds__(kFp8GemvThreads) linear_fp8_gemv_kernel(const Fp8GemvParams<OutT> p) {
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t row0 = int64_t{blockIdx.x} * kFp8GemvRows;
  const float* w_scale_row = p.w_scales + row0 / 128 * p.groups;
  float acc[kFp8GemvRows][kT];
#pragma unroll
  for (int r = 0; r < kFp8GemvRows; ++r) {
#pragma unroll
    for (int j = 0; j < kT; ++j) acc[r][j] = 0.0f;
  }
  const int chunks = (p.k + kFp8GemvChunk - 1) / kFp8GemvChunk;
  for (int c = warp; c < chunks; c += kFp8GemvWarps) {
    const int64_t col = int64_t{c} * kFp8GemvChunk + 16 * lane;
    const bool valid = col < p.k;  // K is a multiple of 16: a lane's vector is all in or all out
    const int g = static_cast<int>((valid ? col : 0) / 128);
    uint4 wv[kFp8GemvRows];
#pragma unroll
    for (int r = 0; r < kFp8GemvRows; ++r) {
      const int64_t row = row0 + r < p.n ? row0 + r : p.n - 1;  // rows past N: read a valid one, never stored
      wv[r] = valid ? __ldcs(reinterpret_cast<const uint4*>(p.w + row * p.k + col)) : make_uint4(0, 0, 0, 0);
    }
    const float w_scale = valid ? __ldg(w_scale_row + g) : 0.0f;
    float xq[kT][16], x_scale[kT];
#pragma unroll
    for (int j = 0; j < kT; ++j) fp8_gemv_activations<kQuantize>(p, j, col, g, valid && j < p.t, xq[j], x_scale[j]);
#pragma unroll
    for (int r = 0; r < kFp8GemvRows; ++r) {
      float wf[16];
      e4m3x16_to_float(wv[r], wf);
#pragma unroll
      for (int j = 0; j < kT; ++j) {
        float sum = 0.0f;
#pragma unroll
        for (int i = 0; i < 16; ++i) sum = fmaf(xq[j][i], wf[i], sum);
        acc[r][j] = fmaf(sum, x_scale[j] * w_scale, acc[r][j]);
      }
    }
  }

  float sum;
  if (gemv_cta_sum<kFp8GemvWarps, kFp8GemvRows, kT>(acc, sum)) {
    const int r = static_cast<int>(threadIdx.x) / kT, j = static_cast<int>(threadIdx.x) % kT;
    const int64_t row = row0 + r;
    if (row < p.n && j < p.t) {
      if constexpr (sizeof(OutT) == 2) {
        p.out[int64_t{j} * p.n + row] = __float2bfloat16_rn(sum);
      } else {
        p.out[int64_t{j} * p.n + row] = sum;
      }
    }
  }
}

}  // namespace mlaserve::ops::gpu
