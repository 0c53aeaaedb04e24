// The tensor-core bf16 GEMV (linear_gemv_mma.cuh: GemvKernel::kTensorCore of linear_gemv_cuda,
// src/ops/cuda/linear_gemv.h) against an fp64 CPU reference on fresh random inputs (Uniform(-1, 1)
// rounded to bf16, the same on both sides): every V2-Lite dense projection (q_proj 3072 x 2048,
// kv_a 576 x 2048 and its rope-key row view, o_proj 2048 x 2048, the shared experts' gate_up
// 5632 x 2048 and down 2048 x 2816, the dense MLP's gate_up 21888 x 2048 and down 2048 x 10944) and
// V3's (q_a 1536 x 7168, q_b 24576 x 1536, kv_a 576 x 7168, o_proj 7168 x 16384, the shared
// experts' gate_up 4096 x 7168 and down 7168 x 2048) at T = 1 .. 8 with bf16 and f32 outputs;
// small awkward shapes (N = 1, 17, 100; K = 8, 16, 40, 48, 4112; runs of several tiles; the
// one-CTA-an-SM plan; the largest K that fits); two programmatic launches back to back (the second
// reads what the first writes), eagerly and as a CUDA graph replayed twice; the kernel choice.
// Outputs are poisoned (NaN) first: an unwritten element fails its bound. x is a fresh [T, K]
// allocation (or a row view), so a read past row T is out of bounds (compute-sanitizer: the Small
// cases, LinearGemvMmaCuda.Small*).
//
// Bounds, from the precision, per element o of row t. Products of two bf16 are exact in fp32; the
// tensor cores add them into an fp32 accumulator, 16 products an mma step, K / 16 steps per warp
// chain, then 8 warps' partials are added. Each of those n_add <= K/16 + 24 additions may lose one
// fp32 ulp of a partial sum whose magnitude is at most A = Σ_κ |x[t, κ] · w[o, κ]| (truncation, not
// only rounding, allowed: the tensor cores' internal alignment is not specified), so
//   f32 out:  |got - y| <= n_add · 2^-23 · A · 2 (margin 2) = (K/16 + 24) · 2^-22 · A;
// typical errors are far smaller (rounding errors of random sign, on partial sums of ~|y|). A bf16 output is that sum rounded once to
// nearest (relative error <= 2^-8 of its magnitude), so
//   bf16 out: |got - y| <= 2^-8 · (|y| + e32) + e32, e32 the f32 bound.
// For random data A ~ sqrt(K) · |y|: the f32 bound is ~1e-3 · |y| at K = 2048 (one dropped product,
// ~|y| / sqrt(K), breaks it there; at K = 10944 it is wider than a product), one dropped 64-value
// piece breaks it at any K. Over a whole output the relative L2 error must also stay under 1e-4
// (f32: the order alone gives ~1e-6) or 4e-3 (bf16: one rounding, ~1.6e-3 RMS), which a product
// dropped from every output (~1/sqrt(K) >= 7.8e-3) breaks. LinearGemvMmaHost.SmallChecks* checks
// both checks on CPU sums, right and wrong.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/error.h"
#include "gemm_cuda_test_util.h"
#include "ops/cuda/linear_gemv.h"
#include "ops/linear.h"

namespace mlaserve::ops {
namespace {

using testing::fill_random;
using testing::fresh_seed;
using testing::poisoned_gpu;
using testing::random_host;

constexpr int64_t kMaxT = 8;

// y [rows, N] fp64 and A = Σ|x·w| for rows of x ([rows, K] bf16 host) and w ([N, K] bf16 host).
struct Reference {
  std::vector<double> y, mag;  // [rows][N]
  int64_t n = 0;
};

Reference reference(const Tensor& x, const Tensor& w) {
  const int64_t rows = x.dim(0), k = x.dim(1), n = w.dim(0);
  std::vector<double> xd(static_cast<size_t>(rows * k)), wd(static_cast<size_t>(k));
  for (int64_t i = 0; i < rows * k; ++i) xd[i] = bf16_to_float(x.data<bfloat16>()[i]);
  Reference r;
  r.n = n;
  r.y.assign(static_cast<size_t>(rows * n), 0.0);
  r.mag.assign(static_cast<size_t>(rows * n), 0.0);
  for (int64_t o = 0; o < n; ++o) {
    const bfloat16* wr = w.data<bfloat16>() + o * k;
    for (int64_t c = 0; c < k; ++c) wd[c] = bf16_to_float(wr[c]);
    for (int64_t t = 0; t < rows; ++t) {
      const double* xr = xd.data() + t * k;
      double s = 0.0, a = 0.0;
      for (int64_t c = 0; c < k; ++c) {
        const double p = xr[c] * wd[c];
        s += p;
        a += std::fabs(p);
      }
      r.y[t * n + o] = s;
      r.mag[t * n + o] = a;
    }
  }
  return r;
}

// The bounds of the note at the top.
double f32_bound(int64_t k, double mag) { return (static_cast<double>(k) / 16.0 + 24.0) * std::ldexp(1.0, -22) * mag; }
double bound(DType out, int64_t k, double y, double mag) {
  const double e32 = f32_bound(k, mag);
  return out == DType::kF32 ? e32 : std::ldexp(1.0, -8) * (std::fabs(y) + e32) + e32;
}

// Relative L2 error over a whole output, from the precision: f32, the summation order alone (~1e-6;
// gemm_cuda_test.cc's 1e-4); bf16, one rounding (~1.6e-3 RMS; 4e-3). A product dropped from every
// output costs ~1/sqrt(K) >= 7.8e-3 (K <= 16384), over both.
constexpr double kF32RelL2 = 1e-4, kBf16RelL2 = 4e-3;

struct Verdict {
  int64_t out_of_bounds = 0;  // elements outside their bound (NaN included)
  double rel_l2 = 0.0;        // sqrt(Σ (got - y)² / Σ y²)
  std::string first;          // the first element out of bounds
};

// got (host [T, N], bf16 or f32) against ref's first T rows.
Verdict judge(const Tensor& got, const Reference& ref, int64_t k) {
  const int64_t t_rows = got.dim(0), n = got.dim(1);
  Verdict v;
  double err2 = 0.0, ref2 = 0.0;
  for (int64_t t = 0; t < t_rows; ++t) {
    for (int64_t o = 0; o < n; ++o) {
      const double g = got.dtype() == DType::kF32 ? got.data<float>()[t * n + o]
                                                  : bf16_to_float(got.data<bfloat16>()[t * n + o]);
      const double y = ref.y[t * ref.n + o], b = bound(got.dtype(), k, y, ref.mag[t * ref.n + o]);
      err2 += (g - y) * (g - y);
      ref2 += y * y;
      if (!(std::fabs(g - y) <= b) && v.out_of_bounds++ == 0) {  // NaN (poison) fails too
        v.first = "out[" + std::to_string(t) + ", " + std::to_string(o) + "] = " + std::to_string(g) + ", want " +
                  std::to_string(y) + " (bound " + std::to_string(b) + ")";
      }
    }
  }
  v.rel_l2 = ref2 > 0.0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  return v;
}

double rel_l2_limit(DType out) { return out == DType::kF32 ? kF32RelL2 : kBf16RelL2; }

// judge's verdict as test failures; true when both hold.
bool within(const Tensor& got, const Reference& ref, int64_t k, const std::string& where) {
  const Verdict v = judge(got, ref, k);
  EXPECT_EQ(v.out_of_bounds, 0) << where << ": outputs out of bounds, the first " << v.first;
  EXPECT_LE(v.rel_l2, rel_l2_limit(got.dtype())) << where << ": relative L2 error";
  return v.out_of_bounds == 0 && !(v.rel_l2 > rel_l2_limit(got.dtype()));
}

class LinearGemvMmaCuda : public testing::Sm90StreamTest {
 protected:
  // Weight rows [w_begin, w_end) of a fresh [n_full, k] weight against x of T rows for every T in
  // ts (x a row view starting at row x_offset when > 0), bf16 and f32 out, through `kernel`. A T
  // whose rows do not fit the tensor-core kernel must be refused by it (and is run by kAuto).
  void check(int64_t n_full, int64_t k, const std::vector<int64_t>& ts, int64_t w_begin = 0, int64_t w_end = -1,
             int64_t x_offset = 0, GemvKernel kernel = GemvKernel::kTensorCore) {
    const uint64_t seed = fresh_seed();
    if (w_end < 0) w_end = n_full;
    const std::string shape = "N " + std::to_string(w_end - w_begin) + " (rows " + std::to_string(w_begin) + ".." +
                              std::to_string(w_end) + " of " + std::to_string(n_full) + ") K " + std::to_string(k);
    SCOPED_TRACE("seed " + std::to_string(seed) + ", " + shape);
    Tensor w_gpu = Tensor::empty({n_full, k}, DType::kBF16, Device::kCUDA);  // [N, K]
    fill_random(w_gpu, seed, stream_);
    const Tensor w_host = random_host({n_full, k}, DType::kBF16, seed).slice(w_begin, w_end);
    const Tensor w = w_gpu.slice(w_begin, w_end);
    // Rows of x: every T takes the first T of the same counter-based values (fill_random fills by
    // flat index), so one reference over kMaxT rows serves them all.
    const Tensor x_host = random_host({x_offset + kMaxT, k}, DType::kBF16, seed + 1).slice(x_offset, x_offset + kMaxT);
    const Reference ref = reference(x_host, w_host);

    for (int64_t t : ts) {
      Tensor x_full = Tensor::empty({x_offset + t, k}, DType::kBF16, Device::kCUDA);  // exactly T rows past the view
      fill_random(x_full, seed + 1, stream_);
      const Tensor x = x_full.slice(x_offset, x_offset + t);
      for (DType out_dtype : {DType::kBF16, DType::kF32}) {
        const std::string where = shape + " T " + std::to_string(t) + " -> " + std::string(dtype_name(out_dtype)) +
                                  " (" + gemv_kernel_name(kernel) + ")";
        Tensor out = poisoned_gpu({t, w_end - w_begin}, out_dtype, stream_);
        ASSERT_TRUE(linear_gemv_applies(x, w, out)) << where;
        GemvKernel run = kernel;
        if (kernel == GemvKernel::kTensorCore && !linear_gemv_mma_fits(t, k)) {
          EXPECT_THROW(linear_gemv_cuda(x, w, out, stream_, kernel), Error) << where << ": should not fit";
          EXPECT_EQ(choose_gemv_kernel(t, k), GemvKernel::kCudaCore) << where;
          run = GemvKernel::kAuto;  // the CUDA-core kernel then
        }
        linear_gemv_cuda(x, w, out, stream_, run);
        sync();
        within(out.to(Device::kCPU), ref, k, where);
      }
    }
  }

  // y1 [t, n1] bf16 = x [t, k1] · W1ᵀ by kernel `first`, then y2 [t, n2] (out2) = y1 · W2ᵀ by
  // `second`, back to back as in a decode step (programmatic launches: the second loads W2 before
  // its wait), eagerly and as a CUDA graph replayed twice (bit for bit the eager outputs). y1 is
  // poisoned before each run: a read of it before the first kernel wrote it gives NaN in y2.
  void check_chain(int64_t t, int64_t k1, int64_t n1, int64_t n2, DType out2, GemvKernel first, GemvKernel second) {
    const uint64_t seed = fresh_seed();
    const std::string where = "chain T " + std::to_string(t) + ": [" + std::to_string(n1) + " x " +
                              std::to_string(k1) + "] (" + gemv_kernel_name(first) + ") then [" +
                              std::to_string(n2) + " x " + std::to_string(n1) + "] (" + gemv_kernel_name(second) +
                              ") -> " + std::string(dtype_name(out2));
    SCOPED_TRACE("seed " + std::to_string(seed) + ", " + where);
    testing::GemvChainOperands c = testing::gemv_chain_operands(t, k1, n1, n2, out2, seed, stream_);
    const Tensor &x = c.x, &w1 = c.w1, &w2 = c.w2, &x_host = c.x_host, &w1_host = c.w1_host, &w2_host = c.w2_host;
    Tensor &y1 = c.y1, &y2 = c.y2;
    sync();  // the weights are written before any programmatic launch reads them (pdl.cuh)

    const std::vector<Tensor> got = eager_then_graph(
        [&] {
          linear_gemv_cuda(x, w1, y1, stream_, first);
          linear_gemv_cuda(y1, w2, y2, stream_, second);
        },
        {&y1, &y2});
    const Tensor &y1_host = got[0], &y2_host = got[1];
    within(y1_host, reference(x_host, w1_host), k1, where + ", y1");
    // y2 against the reference on y1 as the GPU wrote it (bf16).
    within(y2_host, reference(y1_host, w2_host), n1, where + ", y2");
  }
};

// ---- small cases (also run under compute-sanitizer) ------------------------------------------

const std::vector<int64_t> kAllT = {1, 2, 3, 4, 5, 6, 7, 8};

// One row, a partial tile (17 = 16 + 1), several tiles with a partial last one (100 = 6 x 16 + 4);
// K of one mma step (16), of a partial k-block (8, 40: K % 16 = 8; 48), and of many pieces with a
// partial last one (4112 = 64 x 64 + 16).
TEST_F(LinearGemvMmaCuda, SmallShapes) {
  for (int64_t n : {1, 17, 100}) {
    for (int64_t k : {8, 16, 40, 48, 4112}) check(n, k, kAllT);
  }
}

// Row views of the weight and of x (the model's kv_a split), and runs of several tiles a CTA
// (9605 rows: 601 tiles over ~264 CTAs, at K = 64 one piece a tile, so a warp's stream crosses
// tiles and most warps have none; at K = 200 four pieces with a partial last).
TEST_F(LinearGemvMmaCuda, SmallViewsAndRuns) {
  check(96, 64, {1, 6, 8}, /*w_begin=*/61, /*w_end=*/96, /*x_offset=*/3);
  check(9605, 64, {2, 8});
  check(9605, 200, {3, 8});
}

// Shared memory: at 8 tokens K = 8192 takes the one-CTA-an-SM plan (ring of 8); K = 14208 is the
// largest that fits at 8 tokens (8 rows of 28416 + 64 bytes), K = 14216 is refused (the CUDA-core
// kernel runs it under kAuto).
TEST_F(LinearGemvMmaCuda, SmallSharedMemoryLimits) {
  EXPECT_TRUE(linear_gemv_mma_fits(8, 14208));
  EXPECT_FALSE(linear_gemv_mma_fits(8, 14216));
  check(100, 8192, {2, 8});
  check(37, 14208, {8});
  check(37, 14216, {7, 8});
}

// Programmatic launches back to back and graph capture: tensor-core after tensor-core, and each
// kernel after the other.
TEST_F(LinearGemvMmaCuda, SmallChainAndGraph) {
  constexpr GemvKernel kTc = GemvKernel::kTensorCore, kCc = GemvKernel::kCudaCore;
  for (int64_t t : {2, 5, 8}) check_chain(t, 296, 520, 37, DType::kF32, kTc, kTc);
  check_chain(3, 296, 520, 37, DType::kBF16, kTc, kTc);
  check_chain(8, 64, 4104, 100, DType::kBF16, kCc, kTc);
  check_chain(8, 64, 4104, 100, DType::kBF16, kTc, kCc);
}

// Host-only: the rule of linear_gemv.h.
TEST(LinearGemvMmaHost, SmallChoice) {
  for (int64_t t = 1; t <= 3; ++t) EXPECT_EQ(choose_gemv_kernel(t, 2048), GemvKernel::kCudaCore) << t;
  for (int64_t t = 4; t <= 8; ++t) EXPECT_EQ(choose_gemv_kernel(t, 2048), GemvKernel::kTensorCore) << t;
  EXPECT_EQ(choose_gemv_kernel(8, 10944), GemvKernel::kTensorCore);
  EXPECT_EQ(choose_gemv_kernel(6, 16384), GemvKernel::kTensorCore);
  EXPECT_EQ(choose_gemv_kernel(7, 16384), GemvKernel::kCudaCore);  // V3 o_proj: 7 rows of x do not fit
  EXPECT_FALSE(linear_gemv_mma_fits(9, 64));
  EXPECT_FALSE(linear_gemv_mma_fits(2, 20));  // K % 8
}

// Host-only: the checks themselves, at K = 2048 and 10944. An fp32 sum in the worst order for the
// bounds (sequential) passes, f32 and bf16-rounded, and so does the same sum in blocks of 16 (as
// the mma steps). Dropping one product from every output fails the relative L2 check (and, at
// K = 2048, most elementwise bounds: at K = 10944 the bound, which allows every addition to lose an
// ulp of A, is wider than one product); dropping one 64-value piece fails most elementwise bounds;
// the poison (NaN) fails them all.
TEST(LinearGemvMmaHost, SmallChecksSeparateRightFromWrong) {
  for (int64_t k : {2048, 10944}) {
    SCOPED_TRACE("K " + std::to_string(k));
    constexpr int64_t kT = 4, kN = 64;
    const Tensor x = random_host({kT, k}, DType::kBF16, 11), w = random_host({kN, k}, DType::kBF16, 12);
    const Reference ref = reference(x, w);
    // out [T, N] (dtype): Σ over κ in [0, K) but [skip_begin, skip_end), in fp32, in blocks of
    // `block` products summed first.
    const auto sum = [&](int64_t block, int64_t skip_begin, int64_t skip_end, DType dtype) {
      Tensor out = Tensor::empty({kT, kN}, dtype);
      for (int64_t t = 0; t < kT; ++t) {
        for (int64_t o = 0; o < kN; ++o) {
          float acc = 0.0f;
          for (int64_t c0 = 0; c0 < k; c0 += block) {
            float part = 0.0f;
            for (int64_t c = c0; c < c0 + block && c < k; ++c) {
              if (c >= skip_begin && c < skip_end) continue;
              part += bf16_to_float(x.data<bfloat16>()[t * k + c]) * bf16_to_float(w.data<bfloat16>()[o * k + c]);
            }
            acc += part;
          }
          if (dtype == DType::kF32) {
            out.data<float>()[t * kN + o] = acc;
          } else {
            out.data<bfloat16>()[t * kN + o] = float_to_bf16(acc);
          }
        }
      }
      return out;
    };
    for (DType dtype : {DType::kF32, DType::kBF16}) {
      SCOPED_TRACE(dtype_name(dtype));
      for (int64_t block : {1, 16}) {
        const Verdict right = judge(sum(block, 0, 0, dtype), ref, k);
        EXPECT_EQ(right.out_of_bounds, 0) << right.first;
        EXPECT_LE(right.rel_l2, rel_l2_limit(dtype) / 2);
      }
      const Verdict product = judge(sum(16, 100, 101, dtype), ref, k);
      EXPECT_GT(product.rel_l2, rel_l2_limit(dtype)) << "one product dropped";
      if (k == 2048) {
        EXPECT_GT(product.out_of_bounds, kT * kN / 2) << "one product dropped";
      }
      EXPECT_GT(judge(sum(16, 64, 128, dtype), ref, k).out_of_bounds, kT * kN * 3 / 4) << "a piece dropped";
    }
    Tensor poison = Tensor::empty({kT, kN}, DType::kF32);
    for (int64_t i = 0; i < kT * kN; ++i) poison.data<float>()[i] = std::nanf("");
    EXPECT_EQ(judge(poison, ref, k).out_of_bounds, kT * kN);
  }
}

// ---- DeepSeek shapes -------------------------------------------------------------------------

TEST_F(LinearGemvMmaCuda, V2LiteShapes) {
  check(3072, 2048, kAllT);   // q_proj
  check(576, 2048, kAllT);    // kv_a_proj_with_mqa
  check(576, 2048, {1, 5, 8}, 512, 576, /*x_offset=*/2);  // its rope-key rows
  check(2048, 2048, kAllT);   // o_proj
  check(5632, 2048, kAllT);   // shared experts' gate_up
  check(2048, 2816, kAllT);   // shared experts' down
  check(21888, 2048, kAllT);  // dense MLP gate_up
  check(2048, 10944, kAllT);  // dense MLP down
}

TEST_F(LinearGemvMmaCuda, V3Shapes) {
  check(1536, 7168, kAllT);   // q_a_proj
  check(24576, 1536, kAllT);  // q_b_proj
  check(576, 7168, kAllT);    // kv_a_proj_with_mqa
  check(7168, 16384, kAllT);  // o_proj (7 and 8 tokens do not fit: refused, the CUDA-core kernel runs them)
  check(4096, 7168, kAllT);   // shared experts' gate_up
  check(7168, 2048, kAllT);   // shared experts' down
}

// The decode step's chains at V2-Lite's shapes under the default choice (kAuto): o_proj then
// q_proj, the shared experts' gate_up then down.
TEST_F(LinearGemvMmaCuda, ChainDecodeShapes) {
  for (int64_t t : {2, 8}) {
    check_chain(t, 2048, 2048, 3072, DType::kBF16, GemvKernel::kAuto, GemvKernel::kAuto);
    check_chain(t, 2048, 2816, 2048, DType::kBF16, GemvKernel::kAuto, GemvKernel::kAuto);
  }
}

}  // namespace
}  // namespace mlaserve::ops
