// The decode GEMV kernels' sums on the CPU, in the kernels' own order, so that a test can ask
// for their outputs bit for bit (gemm_cuda_test.cc). Each mirrors one kernel's accumulation: the
// fp32 FMAs of each thread in the order it issues them, the warp-shuffle butterfly of warp_sum
// (ops/cuda/reduce.cuh), and the sums through shared memory in their loop order. The kernels'
// loads (before or after the programmatic-launch wait, how many in flight) do not change these
// sums, so the same emulation holds for every version of a kernel that keeps them.
//
//   linear_gemv_bf16_kernel (ops/cuda/linear_gemv.cuh): y [T, N] f32, before the output rounding
//   mla_absorb_gemv_kernel  (ops/cuda/mla_absorb_gemv.cuh): q_abs's latent channels, bf16
//   mla_up_gemv_kernel      (ops/cuda/mla_absorb_gemv.cuh): o, bf16
//
// The kernels' layout constants are restated here (the .cuh files are device code); a change
// there that changes the order fails the bitwise tests, which is the point.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace mlaserve::ops::testing {

namespace gemv_order {
inline constexpr int kGemvWarps = 8;    // linear_gemv.cuh kGemvWarps
inline constexpr int kGemvChunk = 256;  // linear_gemv.cuh kGemvChunk: 32 lanes x 8 values
inline constexpr int kAbsorbRowGroups = 16;  // mla_absorb_gemv.cuh kAbsorbRowGroups

inline float bf(const bfloat16* p, int64_t i) { return bf16_to_float(p[i]); }

// warp_sum's butterfly: after each step lanes l and l ^ o hold v[l] + v[l ^ o] (the same float
// either way round); lane 0's value at the end.
inline float warp_sum(std::vector<float> v) {
  for (int o = 16; o > 0; o >>= 1) {
    std::vector<float> next(32);
    for (int l = 0; l < 32; ++l) next[l] = v[l] + v[l ^ o];
    v = next;
  }
  return v[0];
}

// One lane's dot product over its 8-value vectors at columns col0, col0 + stride, ... < k, each
// vector as the kernels do it: pairs (2e, 2e + 1), acc = fma(w1, x1, fma(w0, x0, acc)).
inline float lane_dot(const bfloat16* w, const bfloat16* x, int64_t col0, int64_t stride, int64_t k) {
  float acc = 0.0f;
  for (int64_t col = col0; col < k; col += stride) {
    for (int e = 0; e < 4; ++e) {
      acc = std::fma(bf(w, col + 2 * e + 1), bf(x, col + 2 * e + 1), std::fma(bf(w, col + 2 * e), bf(x, col + 2 * e), acc));
    }
  }
  return acc;
}
}  // namespace gemv_order

// y [t, n] f32 = x [t, k] · w [n, k]ᵀ summed as linear_gemv_bf16_kernel sums it: lane l of warp
// w takes chunks w, w + 8, ... (columns 256 c + 8 l), warp_sum, then the 8 warps in order.
inline std::vector<float> linear_gemv_kernel_order(const bfloat16* x, const bfloat16* w, int64_t t, int64_t n,
                                                   int64_t k) {
  using namespace gemv_order;
  std::vector<float> y(static_cast<size_t>(t * n));
  std::vector<float> lanes(32);
  for (int64_t j = 0; j < t; ++j) {
    for (int64_t r = 0; r < n; ++r) {
      float sum = 0.0f;
      for (int warp = 0; warp < kGemvWarps; ++warp) {
        for (int l = 0; l < 32; ++l) {
          lanes[l] = lane_dot(w + r * k, x + j * k, int64_t{warp} * kGemvChunk + 8 * l,
                              int64_t{kGemvWarps} * kGemvChunk, k);
        }
        sum += warp_sum(lanes);
      }
      y[static_cast<size_t>(j * n + r)] = sum;
    }
  }
  return y;
}

// q_abs[t, h, c] for c < dc (bf16 bits; q_pe's channels are a copy, checked apart) as
// mla_absorb_gemv_kernel sums it: thread (column vector, row group g) runs over d = g, g + 16,
// ... < dn with acc = fma(w, q, acc); the 16 row groups are added in order. q [t, n, dn + dr],
// w [n·rph, dc] (W_UK[h] = rows h·rph ..).
inline std::vector<uint16_t> mla_absorb_kernel_order(const bfloat16* q, const bfloat16* w, int64_t t, int64_t n,
                                                     int64_t dn, int64_t dr, int64_t dc, int64_t rph) {
  using namespace gemv_order;
  std::vector<uint16_t> out(static_cast<size_t>(t * n * dc));
  for (int64_t j = 0; j < t; ++j) {
    for (int64_t h = 0; h < n; ++h) {
      const bfloat16* qh = q + (j * n + h) * (dn + dr);
      const bfloat16* wh = w + h * rph * dc;
      for (int64_t c = 0; c < dc; ++c) {
        float sum = 0.0f;
        for (int g = 0; g < kAbsorbRowGroups; ++g) {
          float acc = 0.0f;
          for (int64_t d = g; d < dn; d += kAbsorbRowGroups) acc = std::fma(bf(wh, d * dc + c), bf(qh, d), acc);
          sum += acc;
        }
        out[static_cast<size_t>((j * n + h) * dc + c)] = float_to_bf16(sum).bits;
      }
    }
  }
  return out;
}

// o[t, h, i] (bf16 bits) as mla_up_gemv_kernel sums it: lane l runs over columns 8 l + 256 m
// < dc, warp_sum. o_lat [t, n, dc], w [n·rph, dc] (W_UV[h] = rows h·rph + dn ..).
inline std::vector<uint16_t> mla_up_kernel_order(const bfloat16* o_lat, const bfloat16* w, int64_t t, int64_t n,
                                                 int64_t dn, int64_t dv, int64_t dc, int64_t rph) {
  using namespace gemv_order;
  std::vector<uint16_t> out(static_cast<size_t>(t * n * dv));
  std::vector<float> lanes(32);
  for (int64_t j = 0; j < t; ++j) {
    for (int64_t h = 0; h < n; ++h) {
      for (int64_t i = 0; i < dv; ++i) {
        const bfloat16* wrow = w + (h * rph + dn + i) * dc;
        for (int l = 0; l < 32; ++l) lanes[l] = lane_dot(wrow, o_lat + (j * n + h) * dc, 8 * l, 256, dc);
        out[static_cast<size_t>((j * n + h) * dv + i)] = float_to_bf16(warp_sum(lanes)).bits;
      }
    }
  }
  return out;
}

}  // namespace mlaserve::ops::testing
