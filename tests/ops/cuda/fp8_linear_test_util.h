// Test helpers of the block-FP8 linears' CUDA tests (linear_fp8_cuda_test.cc: the dense GEMM
// kernels; linear_fp8_gemv_mma_cuda_test.cc: the tensor-core GEMV and the SwiGLU down): random
// e4m3 operands and scales, and the error metrics and their bounds.
//
// Tolerances, from the precision. Both sides see the same e4m3 values and fp32 scales; products
// of two e4m3 values are exact. The tensor cores sum a 128-wide group with ~fp22 partial sums
// (DeepSeek-V3 report: ~14 mantissa bits kept), then the group sums are scaled and added in
// fp32 on both sides: ~1e-4 relative to the row's magnitude. The output is rounded once to bf16:
// at most 2^-9 relative (round to nearest), ~1.6e-3 RMS over a binade. Hence, over the checked
// rows: relative L2 < 4e-3 (6e-3 for any row), DeepGEMM's calc_diff = 1 - 2<x,y>/(|x|^2+|y|^2)
// < 1e-5 (it is ~rel_l2^2 / 2: bf16 rounding alone gives ~1.3e-6), and every element within
// 2^-8·|ref| + 2^-9·rms(ref row) (twice the rounding step plus 1/512 of the row's scale for the
// group sums' rounding).
//
// f32 outputs (the tensor-parallel partial sums, all-reduced before they are rounded): no bf16
// rounding, only the group sums' ~1e-4, so relative L2 < 1e-3 (2e-3 for any row), calc_diff
// < 1e-6, the same element bound; and most outputs must not be bf16 values (an f32 path that
// rounded to bf16 first would pass the error bounds above but not this).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "gemm_cuda_test_util.h"
#include "ops/fp8_block.h"

namespace mlaserve::ops::testing {

inline constexpr double kRelL2 = 4e-3, kRowRelL2 = 6e-3, kCalcDiff = 1e-5;
inline constexpr double kF32RelL2 = 1e-3, kF32RowRelL2 = 2e-3, kF32CalcDiff = 1e-6;

// Elements of an f32 tensor that bf16 holds exactly.
inline int64_t count_bf16_values(const Tensor& t) {
  int64_t n = 0;
  for (float v : t.to_vector()) n += round_bf16(v) == v;
  return n;
}

// Uniform(-448, 448) rounded to e4m3 (the full range a block's amax maps to), via a table of
// 4096 codes indexed by 12 random bits: 264M weights fill in well under a second.
inline Tensor random_fp8(const Shape& shape, std::mt19937_64& rng) {
  static const std::vector<float8_e4m3> table = [] {
    std::vector<float8_e4m3> t(4096);
    for (int i = 0; i < 4096; ++i) t[i] = float_to_e4m3(((i + 0.5f) / 4096.0f * 2.0f - 1.0f) * 448.0f);
    return t;
  }();
  Tensor t = Tensor::empty(shape, DType::kF8E4M3);
  float8_e4m3* p = t.data<float8_e4m3>();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; i += 5) {
    uint64_t r = rng();
    for (int64_t j = i; j < std::min(n, i + 5); ++j, r >>= 12) p[j] = table[r & 4095];
  }
  return t;
}

// Positive scales uniform in [0.5, 1.5] x center.
inline Tensor random_scales(const Shape& shape, float center, std::mt19937_64& rng) {
  Tensor t = Tensor::empty(shape, DType::kF32);
  std::uniform_real_distribution<float> u(0.5f * center, 1.5f * center);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = u(rng);
  return t;
}

// Rows of a host [rows, cols] tensor (any dtype), appended to `out` at row `at`.
inline void copy_rows(const Tensor& t, const std::vector<int64_t>& rows, Tensor& out, int64_t at) {
  const size_t row_bytes = static_cast<size_t>(t.nbytes() / t.dim(0));
  for (size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(static_cast<uint8_t*>(out.raw()) + (at + static_cast<int64_t>(i)) * row_bytes,
                static_cast<const uint8_t*>(t.raw()) + rows[i] * row_bytes, row_bytes);
  }
}

struct Fp8Errors {
  double rel_l2 = 0.0, worst_row = 0.0, calc_diff = 0.0;
  int64_t outside_bound = 0;  // elements past 2^-8·|ref| + 2^-9·rms(row)
};

// got, want: [rows, n] f32.
inline Fp8Errors compare(const Tensor& got, const Tensor& want) {
  const int64_t rows = want.dim(0), n = want.dim(1);
  const float* g = got.data<float>();
  const float* w = want.data<float>();
  Fp8Errors e;
  double num = 0.0, den = 0.0, dot = 0.0, gg = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    double rn = 0.0, rd = 0.0;
    for (int64_t c = 0; c < n; ++c) rd += static_cast<double>(w[r * n + c]) * w[r * n + c];
    const double rms = std::sqrt(rd / static_cast<double>(n));
    for (int64_t c = 0; c < n; ++c) {
      const double a = g[r * n + c], b = w[r * n + c];
      rn += (a - b) * (a - b);
      dot += a * b;
      gg += a * a;
      if (!(std::fabs(a - b) <= 0x1p-8 * std::fabs(b) + 0x1p-9 * rms)) ++e.outside_bound;  // NaN counts
    }
    num += rn;
    den += rd;
    const double row = std::sqrt(rn / std::max(rd, 1e-30));
    if (!(row <= e.worst_row)) e.worst_row = row;
  }
  e.rel_l2 = std::sqrt(num / std::max(den, 1e-30));
  e.calc_diff = 1.0 - 2.0 * dot / std::max(gg + den, 1e-30);
  return e;
}

// compare's errors within the bounds of the note at the top (the f32-output ones when f32_out);
// the rel_l2 goes into the error report.
inline void expect_within_bounds(const std::string& what, const Fp8Errors& e, bool f32_out) {
  testing::record_error(what + " rel_l2", e.rel_l2);
  EXPECT_LT(e.rel_l2, f32_out ? kF32RelL2 : kRelL2) << what;
  EXPECT_LT(e.worst_row, f32_out ? kF32RowRelL2 : kRowRelL2) << what;
  EXPECT_LT(e.calc_diff, f32_out ? kF32CalcDiff : kCalcDiff) << what;
  EXPECT_EQ(e.outside_bound, 0) << what << ": elements past 2^-8 |ref| + 2^-9 rms(row)";
}

// A random block-FP8 weight [n, k] (e4m3 codes, weight_scale_inv around 1e-4) on the host and on
// the GPU.
struct Fp8Weight {
  Tensor w_host, ws_host;  // [N, K] e4m3, [ceil(N/128), ceil(K/128)] f32
  Tensor w, ws;            // the same on the GPU
};
inline Fp8Weight random_fp8_weight(int64_t n, int64_t k, std::mt19937_64& rng) {
  Fp8Weight f{random_fp8({n, k}, rng), random_scales({fp8_num_blocks(n), fp8_num_blocks(k)}, 1e-4f, rng), {}, {}};
  f.w = f.w_host.to(Device::kCUDA);
  f.ws = f.ws_host.to(Device::kCUDA);
  return f;
}

}  // namespace mlaserve::ops::testing
