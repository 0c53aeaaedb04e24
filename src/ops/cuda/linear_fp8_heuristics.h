// Which kernel runs a dense block-scaled FP8 GEMM (ops/linear_fp8.h), and how the sm90 swap-AB
// kernel (linear_fp8_sm90.cuh) is cut. Plain host code: the numbers come from the bench
// (bench/NOTES-fp8-gemm.md), the rules are these:
//
//   - T <= 128 tokens (decode batches): the swap-AB kernel. Its bytes are the weight, read once;
//     cuBLASLt's tiles put the tokens on the M side (64 or 128 rows), so a decode batch leaves
//     its tensor cores mostly idle and its K loop too short to stream the weights at HBM speed.
//   - T > 128: cuBLASLt when its layout constraints hold (T, N multiples of 4, N of 8,
//     ceil(K/128) of 4), else the swap-AB kernel, which is correct at any T but re-reads the
//     weight once per 128 tokens (from L2 mostly).
//
// Swap-AB tiles: 64 weight rows x BN tokens per CTA, BN = 16, 64 or 128 (the smallest that holds
// T, at most 128; more tokens take more tiles). K is split over a cluster of `splits` CTAs (at
// most 8, the portable cluster size, and at most one split per 128-wide K group) so that the
// grid fills every CTA slot of the GPU at least once: a 576 x 7168 projection is only 9 tiles
// of 64 rows.
#pragma once

#include <algorithm>
#include <cstdint>

namespace mlaserve::ops::sm90_fp8 {

enum class Fp8GemmPath : uint8_t { kSwapAB, kCublasLt };

inline constexpr int64_t kSwapAbMaxTokens = 128;  // the swap-AB kernel's range under kAuto
inline constexpr int kMaxSplits = 8;              // portable thread-block cluster size

// cuBLASLt's block-scaled FP8 layout constraints (cublaslt_gemm.h); N of 8 keeps bf16 rows of
// out 16-byte aligned.
inline bool cublaslt_fp8_fits(int64_t t, int64_t n, int64_t k) {
  return t % 4 == 0 && n % 8 == 0 && k % 16 == 0 && ((k + 127) / 128) % 4 == 0;
}

inline Fp8GemmPath choose_fp8_gemm(int64_t t, int64_t n, int64_t k) {
  return t > kSwapAbMaxTokens && cublaslt_fp8_fits(t, n, k) ? Fp8GemmPath::kCublasLt : Fp8GemmPath::kSwapAB;
}

// Token tile width of the swap-AB kernel.
inline int swap_ab_bn(int64_t t) { return t <= 16 ? 16 : (t <= 64 ? 64 : 128); }

// CTAs of the swap-AB kernel that fit one SM (its shared memory, linear_fp8_sm90.cuh checks).
inline int swap_ab_ctas_per_sm(int bn) { return bn == 16 ? 3 : 2; }

struct SwapAbPlan {
  int bn = 16;       // tokens per CTA
  int n_tiles = 1;   // ceil(N / 64)
  int t_tiles = 1;   // ceil(T / bn)
  int splits = 1;    // CTAs per cluster along K (grid z)
};

inline SwapAbPlan plan_swap_ab(int64_t t, int64_t n, int64_t k, int sms) {
  SwapAbPlan p;
  p.bn = swap_ab_bn(t);
  p.n_tiles = static_cast<int>((n + 63) / 64);
  p.t_tiles = static_cast<int>((t + p.bn - 1) / p.bn);
  const int64_t tiles = static_cast<int64_t>(p.n_tiles) * p.t_tiles;
  const int64_t slots = static_cast<int64_t>(sms) * swap_ab_ctas_per_sm(p.bn);
  const int64_t groups = (k + 127) / 128;
  const int64_t want = (slots + tiles - 1) / tiles;
  p.splits = static_cast<int>(std::clamp<int64_t>(want, 1, std::min<int64_t>(kMaxSplits, groups)));
  return p;
}

}  // namespace mlaserve::ops::sm90_fp8
