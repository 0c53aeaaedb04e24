// linear_fp8_w8a8_cuda (every kernel: the CUDA-core GEMV, the tensor-core GEMV, the sm90 swap-AB
// kernel and cuBLASLt's block-scaled FP8) against linear_fp8_w8a8_cpu, on fresh random e4m3
// operands and scales at every dense FP8 projection of DeepSeek-V3 and of V2-Lite quantised to
// FP8 (kv_a_proj's N = 576 ends in a half scale block; V2-Lite's 10944 and 2816 leave K groups and
// row blocks partial), T = 1, 3, 7, 64, 128, 1000, 4096. Outputs are poisoned (NaN) first and
// must be fully written. At T > 16 only some rows are checked against the CPU (first, last, two
// random): a wrong tile, split or stride shows in any row it touches. linear_fp8_cuda (bf16
// activations, quantised inside the GEMVs or by the quantiser before the other kernels) against
// linear_fp8_cpu on the same bf16 values, at the decode token counts and at 1000 tokens through
// cuBLASLt (its scales written by the quantiser in cuBLASLt's layout): the quantisation is
// bit-identical on both sides, so the same bounds hold.
// The tensor-core GEMV (kGemvMma, T <= 8) also on its own at T = 1 .. 8 on every projection, both
// activation kinds, every launch shape of kFp8GemvMmaConfigs on the small cases, and in a chain
// of programmatic launches replayed from a CUDA graph (GemvMma* below). silu_mul_linear_fp8_cuda
// (an MLP's down projection on its gate_up rows) against silu_mul_linear_fp8_cpu at the MLPs'
// down shapes, its one-launch form also bit for bit against its two passes (SwiGluDown* below).
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
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/cuda_check.h"
#include "gemm_cuda_test_util.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/linear_fp8_gemv.h"
#include "ops/cuda/linear_fp8_heuristics.h"
#include "ops/cuda/linear_fp8_sm90.h"
#include "ops/fp8_block.h"
#include "ops/linear_fp8.h"

namespace mlaserve::ops {
namespace {

using testing::count_nonfinite;
using testing::fresh_seed;
using testing::poisoned_gpu;
using testing::rows_to_check;

constexpr double kRelL2 = 4e-3, kRowRelL2 = 6e-3, kCalcDiff = 1e-5;
constexpr double kF32RelL2 = 1e-3, kF32RowRelL2 = 2e-3, kF32CalcDiff = 1e-6;

// Elements of an f32 tensor that bf16 holds exactly.
int64_t count_bf16_values(const Tensor& t) {
  int64_t n = 0;
  for (float v : t.to_vector()) n += round_bf16(v) == v;
  return n;
}

// Uniform(-448, 448) rounded to e4m3 (the full range a block's amax maps to), via a table of
// 4096 codes indexed by 12 random bits: 264M weights fill in well under a second.
Tensor random_fp8(const Shape& shape, std::mt19937_64& rng) {
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
Tensor random_scales(const Shape& shape, float center, std::mt19937_64& rng) {
  Tensor t = Tensor::empty(shape, DType::kF32);
  std::uniform_real_distribution<float> u(0.5f * center, 1.5f * center);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = u(rng);
  return t;
}

// Rows of a host [rows, cols] tensor (any dtype), appended to `out` at row `at`.
void copy_rows(const Tensor& t, const std::vector<int64_t>& rows, Tensor& out, int64_t at) {
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
Fp8Errors compare(const Tensor& got, const Tensor& want) {
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
void expect_within_bounds(const std::string& what, const Fp8Errors& e, bool f32_out) {
  testing::record_error(what + " rel_l2", e.rel_l2);
  EXPECT_LT(e.rel_l2, f32_out ? kF32RelL2 : kRelL2) << what;
  EXPECT_LT(e.worst_row, f32_out ? kF32RowRelL2 : kRowRelL2) << what;
  EXPECT_LT(e.calc_diff, f32_out ? kF32CalcDiff : kCalcDiff) << what;
  EXPECT_EQ(e.outside_bound, 0) << what << ": elements past 2^-8 |ref| + 2^-9 rms(row)";
}

class LinearFp8Cuda : public testing::Sm90StreamTest {
 protected:
  // One weight [n, k] against x of each row count in ms, through each kernel that takes the
  // shape (kAuto too). The GPU runs every case, then one CPU reference call covers the checked
  // rows of all of them.
  void check(int64_t n, int64_t k, const std::vector<int64_t>& ms, DType out_dtype = DType::kBF16) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + ", N " + std::to_string(n) + ", K " + std::to_string(k) + ", out " +
                 std::string(dtype_name(out_dtype)));
    const bool f32_out = out_dtype == DType::kF32;
    std::mt19937_64 rng(seed);
    const int64_t g = fp8_num_blocks(k);
    const Tensor w_host = random_fp8({n, k}, rng);                               // [N, K]
    const Tensor ws_host = random_scales({fp8_num_blocks(n), g}, 1e-4f, rng);   // [N/128, G]
    const Tensor w = w_host.to(Device::kCUDA), ws = ws_host.to(Device::kCUDA);

    struct Run {
      std::string what;  // M, N, K and the kernel
      Tensor got;        // [checked rows, N] f32
      int64_t ref_at;
    };
    std::vector<Run> runs;
    std::vector<Tensor> x_rows, xs_rows;
    int64_t total = 0;
    for (const int64_t m : ms) {
      const Tensor x_host = random_fp8({m, k}, rng);                 // [T, K]
      const Tensor xs_host = random_scales({m, g}, 1e-2f, rng);      // [T, G]
      const Tensor x = x_host.to(Device::kCUDA), xs = xs_host.to(Device::kCUDA);
      const std::vector<int64_t> rows = rows_to_check(m, rng);
      const auto checked = static_cast<int64_t>(rows.size());
      std::vector<Fp8GemmKernel> kernels = {Fp8GemmKernel::kAuto, Fp8GemmKernel::kSm90SwapAB};
      if (sm90_fp8::cublaslt_fp8_fits(m, n, k)) kernels.push_back(Fp8GemmKernel::kCublasLt);
      if (sm90_fp8::one_group_fits(n, k) && !f32_out) kernels.push_back(Fp8GemmKernel::kOneGroup);
      if (sm90_fp8::fp8_gemv_fits(m, k)) kernels.push_back(Fp8GemmKernel::kGemv);
      if (sm90_fp8::fp8_gemv_mma_fits(m, k)) kernels.push_back(Fp8GemmKernel::kGemvMma);
      const std::string shape = "M " + std::to_string(m) + " N " + std::to_string(n) + " K " + std::to_string(k);
      auto run = [&](const std::string& what, const std::function<void(Tensor&)>& gemm) {
        Tensor out = poisoned_gpu({m, n}, out_dtype, stream_);
        gemm(out);
        sync();
        const Tensor out_host = out.to(Device::kCPU);
        EXPECT_EQ(count_nonfinite(out_host), 0) << what << ": outputs unwritten (poison) or not finite";
        if (f32_out) {
          EXPECT_LT(count_bf16_values(out_host), out_host.numel() / 4) << what << ": f32 out rounded to bf16";
        }
        runs.push_back({what, testing::gather_rows_f32(out_host, rows), total});
      };
      for (const Fp8GemmKernel kernel : kernels) {
        run(shape + " kernel " + std::to_string(static_cast<int>(kernel)),
            [&](Tensor& out) { linear_fp8_w8a8_cuda(x, xs, w, ws, out, stream_, kernel); });
      }
      // kAuto planned beside another kernel (a smaller split where the swap-AB kernel runs).
      run(shape + " kAuto beside", [&](Tensor& out) {
        linear_fp8_w8a8_cuda(Fp8Activations{x, xs, Tensor()}, w, ws, out, stream_, Fp8GemmKernel::kAuto,
                             GridPlacement::kBeside);
      });
      // Every swap-AB plan the benchmark times (and the heuristics may pick) at decode sizes.
      if (m <= 2 * sm90_fp8::kSwapAbMaxTokens) {
        for (const sm90_fp8::SwapAbPlan& plan : sm90_fp8::swap_ab_candidates(m, n, k, sm90_fp8::swap_ab_gpu())) {
          run(shape + " swap-AB plan " + sm90_fp8::swap_ab_plan_name(plan),
              [&](Tensor& out) {
                sm90_fp8::run_swap_ab({x.raw(), static_cast<const float*>(xs.raw()), w.raw(),
                                       static_cast<const float*>(ws.raw()), out.raw(), f32_out},
                                      m, n, k, plan, stream_);
              });
        }
      }
      Tensor xr = Tensor::empty({checked, k}, DType::kF8E4M3), xsr = Tensor::empty({checked, g}, DType::kF32);
      copy_rows(x_host, rows, xr, 0);
      copy_rows(xs_host, rows, xsr, 0);
      x_rows.push_back(xr);
      xs_rows.push_back(xsr);
      total += checked;
    }

    Tensor x_all = Tensor::empty({total, k}, DType::kF8E4M3), xs_all = Tensor::empty({total, g}, DType::kF32);
    int64_t at = 0;
    for (size_t i = 0; i < x_rows.size(); ++i) {
      std::vector<int64_t> all(static_cast<size_t>(x_rows[i].dim(0)));
      for (size_t r = 0; r < all.size(); ++r) all[r] = static_cast<int64_t>(r);
      copy_rows(x_rows[i], all, x_all, at);
      copy_rows(xs_rows[i], all, xs_all, at);
      at += x_rows[i].dim(0);
    }
    Tensor ref = Tensor::empty({total, n}, DType::kF32);
    linear_fp8_w8a8_cpu(x_all, xs_all, w_host, ws_host, ref);

    for (const Run& run : runs) {
      const Fp8Errors e = compare(run.got, ref.slice(run.ref_at, run.ref_at + run.got.dim(0)));
      const std::string& what = run.what;
      expect_within_bounds(what, e, f32_out);
    }
  }


  // linear_fp8_cuda on bf16 activations (uniform(-1, 1) rounded to bf16, every `spread`-th group
  // scaled by 2^-12 so that groups of very different amax sit in one row) through kAuto, the GEMV
  // where it fits and the swap-AB kernel, against linear_fp8_cpu on the same values as f32.
  void check_bf16(int64_t n, int64_t k, const std::vector<int64_t>& ms, const ActQuantParams& act,
                  DType out_dtype = DType::kBF16) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + ", bf16 x, N " + std::to_string(n) + ", K " + std::to_string(k) +
                 ", out " + std::string(dtype_name(out_dtype)) +
                 (act.scale_format == Fp8ScaleFormat::kUE8M0 ? ", UE8M0 scales" : ""));
    const bool f32_out = out_dtype == DType::kF32;
    std::mt19937_64 rng(seed);
    const Tensor w_host = random_fp8({n, k}, rng);                                            // [N, K]
    const Tensor ws_host = random_scales({fp8_num_blocks(n), fp8_num_blocks(k)}, 1e-4f, rng);  // [N/128, G]
    const Tensor w = w_host.to(Device::kCUDA), ws = ws_host.to(Device::kCUDA);
    for (const int64_t m : ms) {
      Tensor x_f32 = testing::random_host({m, k}, DType::kF32, rng());  // [T, K]
      float* xv = x_f32.data<float>();
      for (int64_t i = 0; i < x_f32.numel(); ++i) xv[i] = round_bf16((i / 128) % 5 == 3 ? xv[i] * 0x1p-12f : xv[i]);
      const Tensor x = x_f32.to_dtype(DType::kBF16).to(Device::kCUDA);
      Tensor ref = Tensor::empty({m, n}, DType::kF32);
      linear_fp8_cpu(x_f32, w_host, ws_host, act, ref);
      std::vector<Fp8GemmKernel> kernels = {Fp8GemmKernel::kAuto, Fp8GemmKernel::kSm90SwapAB};
      if (sm90_fp8::fp8_gemv_fits(m, k)) kernels.push_back(Fp8GemmKernel::kGemv);
      if (sm90_fp8::fp8_gemv_mma_fits(m, k)) kernels.push_back(Fp8GemmKernel::kGemvMma);
      if (sm90_fp8::cublaslt_fp8_fits(m, n, k)) kernels.push_back(Fp8GemmKernel::kCublasLt);
      for (const Fp8GemmKernel kernel : kernels) {
        const std::string what = "bf16 x M " + std::to_string(m) + " N " + std::to_string(n) + " K " +
                                 std::to_string(k) + " kernel " + std::to_string(static_cast<int>(kernel));
        Tensor out = poisoned_gpu({m, n}, out_dtype, stream_);
        linear_fp8_cuda(x, w, ws, act, out, stream_, kernel);
        sync();
        const Tensor out_host = out.to(Device::kCPU);
        EXPECT_EQ(count_nonfinite(out_host), 0) << what << ": outputs unwritten (poison) or not finite";
        std::vector<int64_t> all(static_cast<size_t>(m));
        for (int64_t r = 0; r < m; ++r) all[static_cast<size_t>(r)] = r;
        const Fp8Errors e = compare(testing::gather_rows_f32(out_host, all), ref);
        expect_within_bounds(what, e, f32_out);
      }
    }
  }

  // out (GPU, [T, N], poisoned before the call) against ref ([T, N] f32, host): fully written,
  // within the bounds of the precision (the note at the top).
  void expect_close(const std::string& what, const Tensor& out, const Tensor& ref) {
    const bool f32_out = out.dtype() == DType::kF32;
    const Tensor out_host = out.to(Device::kCPU);
    EXPECT_EQ(count_nonfinite(out_host), 0) << what << ": outputs unwritten (poison) or not finite";
    if (f32_out && out_host.numel() >= 64) {
      EXPECT_LT(count_bf16_values(out_host), out_host.numel() / 4) << what << ": f32 out rounded to bf16";
    }
    std::vector<int64_t> all(static_cast<size_t>(out.dim(0)));
    for (size_t r = 0; r < all.size(); ++r) all[r] = static_cast<int64_t>(r);
    const Fp8Errors e = compare(testing::gather_rows_f32(out_host, all), ref);
    expect_within_bounds(what, e, f32_out);
  }

  // The tensor-core GEMV on one weight [n, k] at each T in ts (1 .. 8), through the dispatch
  // (Fp8GemmKernel::kGemvMma) and through run_fp8_gemv_mma with each of `configs`, on both kinds
  // of activations: bf16 x quantised inside (against linear_fp8_cpu) and e4m3 x_q + scales
  // (against linear_fp8_w8a8_cpu). The T tokens are the first T of 8 rows, so one CPU reference
  // of 8 rows a kind covers every T.
  void check_gemv_mma(int64_t n, int64_t k, const std::vector<int64_t>& ts, const ActQuantParams& act,
                      DType out_dtype = DType::kBF16, const std::vector<gpu::GemvMmaConfig>& configs = {}) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + ", gemv mma, N " + std::to_string(n) + ", K " + std::to_string(k) +
                 ", out " + std::string(dtype_name(out_dtype)) +
                 (act.scale_format == Fp8ScaleFormat::kUE8M0 ? ", UE8M0 scales" : ""));
    std::mt19937_64 rng(seed);
    constexpr int64_t kRows = 8;
    const int64_t g = fp8_num_blocks(k);
    const Tensor w_host = random_fp8({n, k}, rng);                                // [N, K]
    const Tensor ws_host = random_scales({fp8_num_blocks(n), g}, 1e-4f, rng);    // [N/128, G]
    const Tensor w = w_host.to(Device::kCUDA), ws = ws_host.to(Device::kCUDA);
    Tensor x_f32 = testing::random_host({kRows, k}, DType::kF32, rng());         // [8, K]
    float* xv = x_f32.data<float>();
    for (int64_t i = 0; i < x_f32.numel(); ++i) xv[i] = round_bf16((i / 128) % 5 == 3 ? xv[i] * 0x1p-12f : xv[i]);
    const Tensor x = x_f32.to_dtype(DType::kBF16).to(Device::kCUDA);
    const Tensor xq_host = random_fp8({kRows, k}, rng);                          // [8, K]
    const Tensor xs_host = random_scales({kRows, g}, 1e-2f, rng);                // [8, G]
    const Tensor xq = xq_host.to(Device::kCUDA), xs = xs_host.to(Device::kCUDA);
    Tensor ref_bf16 = Tensor::empty({kRows, n}, DType::kF32), ref_q = Tensor::empty({kRows, n}, DType::kF32);
    linear_fp8_cpu(x_f32, w_host, ws_host, act, ref_bf16);
    linear_fp8_w8a8_cpu(xq_host, xs_host, w_host, ws_host, ref_q);

    for (const int64_t t : ts) {
      const std::string shape = " T " + std::to_string(t) + " N " + std::to_string(n) + " K " + std::to_string(k);
      const Tensor xt = x.slice(0, t), xqt = xq.slice(0, t), xst = xs.slice(0, t);
      {
        Tensor out = poisoned_gpu({t, n}, out_dtype, stream_);
        linear_fp8_cuda(xt, w, ws, act, out, stream_, Fp8GemmKernel::kGemvMma);
        sync();
        expect_close("bf16 x" + shape, out, ref_bf16.slice(0, t));
      }
      {
        Tensor out = poisoned_gpu({t, n}, out_dtype, stream_);
        linear_fp8_w8a8_cuda(xqt, xst, w, ws, out, stream_, Fp8GemmKernel::kGemvMma);
        sync();
        expect_close("e4m3 x" + shape, out, ref_q.slice(0, t));
      }
      for (const gpu::GemvMmaConfig& c : configs) {
        const std::string cfg = " config {" + std::to_string(c.ctas_per_sm) + ", " + std::to_string(c.depth) + ", " +
                                std::to_string(c.tiles_per_cta) + "}";
        for (const bool quantize : {true, false}) {
          Tensor out = poisoned_gpu({t, n}, out_dtype, stream_);
          sm90_fp8::run_fp8_gemv_mma({quantize ? xt.raw() : xqt.raw(), quantize ? nullptr : xst.data<float>(),
                                      w.raw(), ws.data<float>(), out.raw(), out_dtype == DType::kF32},
                                     t, n, k, quantize ? sm90_fp8::Fp8GemvInput::kBf16 : sm90_fp8::Fp8GemvInput::kCodes,
                                     act, stream_, c);
          sync();
          expect_close((quantize ? "bf16 x" : "e4m3 x") + shape + cfg, out, (quantize ? ref_bf16 : ref_q).slice(0, t));
        }
      }
    }
  }

  // silu_mul_linear_fp8_cuda: an MLP's down projection [n, k] on gate_up rows [T, 2k] bf16 (gate
  // uniform(-4, 4), up uniform(-1, 1) with every fifth group scaled by 2^-12; the first T of 8
  // rows), against silu_mul_linear_fp8_cpu on the same values, through kAuto, the one-launch form
  // (kGemvMma, where it fits) and the two-pass form on another kernel (kSm90SwapAB). The one-launch
  // form must give the bits of the two-pass form on the same GEMV (silu_mul_quantize_fp8_cuda, then
  // the tensor-core GEMV on its codes), with each of `configs` too: the same codes, scales and sums.
  // The reference's SwiGLU uses std::exp where the GPU uses expf: a code may differ by one e4m3
  // step where the two round apart on a rounding boundary, well inside the bounds.
  void check_swiglu_down(int64_t n, int64_t k, const std::vector<int64_t>& ts, const ActQuantParams& act,
                         DType out_dtype = DType::kBF16, const std::vector<gpu::GemvMmaConfig>& configs = {}) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + ", SwiGLU down, N " + std::to_string(n) + ", K " +
                 std::to_string(k) + ", out " + std::string(dtype_name(out_dtype)) +
                 (act.scale_format == Fp8ScaleFormat::kUE8M0 ? ", UE8M0 scales" : ""));
    std::mt19937_64 rng(seed);
    constexpr int64_t kRows = 8;
    const int64_t g = fp8_num_blocks(k);
    const Tensor w_host = random_fp8({n, k}, rng);                              // [N, K]
    const Tensor ws_host = random_scales({fp8_num_blocks(n), g}, 1e-4f, rng);  // [N/128, G]
    const Tensor w = w_host.to(Device::kCUDA), ws = ws_host.to(Device::kCUDA);
    Tensor gate_up_f32 = testing::random_host({kRows, 2 * k}, DType::kF32, rng());  // [8, 2K]
    float* v = gate_up_f32.data<float>();
    for (int64_t r = 0; r < kRows; ++r) {
      for (int64_t c = 0; c < 2 * k; ++c) {
        float& x = v[r * 2 * k + c];
        x = c < k ? 4.0f * round_bf16(x) : round_bf16((c - k) / 128 % 5 == 3 ? x * 0x1p-12f : x);
      }
    }
    const Tensor gate_up = gate_up_f32.to_dtype(DType::kBF16).to(Device::kCUDA);
    Tensor ref = Tensor::empty({kRows, n}, DType::kF32);
    silu_mul_linear_fp8_cpu(gate_up_f32, w_host, ws_host, act, ref);

    for (const int64_t t : ts) {
      const std::string shape = " T " + std::to_string(t) + " N " + std::to_string(n) + " K " + std::to_string(k);
      const Tensor gu = gate_up.slice(0, t);
      const auto run = [&](const std::string& what, Fp8GemmKernel kernel) {
        Tensor out = poisoned_gpu({t, n}, out_dtype, stream_);
        silu_mul_linear_fp8_cuda(gu, w, ws, act, out, stream_, kernel);
        sync();
        expect_close(what + shape, out, ref.slice(0, t));
        return out;
      };
      run("kAuto", Fp8GemmKernel::kAuto);
      run("two passes, swap-AB", Fp8GemmKernel::kSm90SwapAB);
      if (!sm90_fp8::fp8_gemv_mma_fits(t, k, sm90_fp8::Fp8GemvInput::kSwiGlu)) continue;
      const Tensor fused = run("one launch", Fp8GemmKernel::kGemvMma);
      Fp8Activations h{Tensor::empty({t, k}, DType::kF8E4M3, Device::kCUDA), Tensor::empty({t, g}, DType::kF32,
                       Device::kCUDA), Tensor()};
      silu_mul_quantize_fp8_cuda(gu, act, h, stream_);
      Tensor two_pass = poisoned_gpu({t, n}, out_dtype, stream_);
      linear_fp8_w8a8_cuda(h, w, ws, two_pass, stream_, Fp8GemmKernel::kGemvMma);
      sync();
      EXPECT_EQ(testing::byte_mismatches(fused, two_pass), 0) << "one launch against two passes" << shape;
      for (const gpu::GemvMmaConfig& c : configs) {
        const std::string cfg = " config {" + std::to_string(c.ctas_per_sm) + ", " + std::to_string(c.depth) + ", " +
                                std::to_string(c.tiles_per_cta) + "}";
        const bool f32_out = out_dtype == DType::kF32;
        Tensor one = poisoned_gpu({t, n}, out_dtype, stream_), two = poisoned_gpu({t, n}, out_dtype, stream_);
        sm90_fp8::run_fp8_gemv_mma({gu.raw(), nullptr, w.raw(), ws.data<float>(), one.raw(), f32_out}, t, n, k,
                                   sm90_fp8::Fp8GemvInput::kSwiGlu, act, stream_, c);
        sm90_fp8::run_fp8_gemv_mma({h.x_q.raw(), h.scales.data<float>(), w.raw(), ws.data<float>(), two.raw(),
                                    f32_out},
                                   t, n, k, sm90_fp8::Fp8GemvInput::kCodes, act, stream_, c);
        sync();
        expect_close("one launch" + shape + cfg, one, ref.slice(0, t));
        EXPECT_EQ(testing::byte_mismatches(one, two), 0) << "one launch against two passes" << shape << cfg;
      }
    }
  }
};

// ---- small cases (also run under compute-sanitizer) ------------------------------------------

// The fused quantisation: partial row block and K group, both scale formats, f32 out.
TEST_F(LinearFp8Cuda, SmallBf16Activations) {
  check_bf16(160, 272, {1, 2, 3, 4, 7}, ActQuantParams{});
  check_bf16(160, 272, {1, 4}, ActQuantParams{kFp8AmaxFloor, Fp8ScaleFormat::kUE8M0});
  check_bf16(1088, 640, {1, 3}, ActQuantParams{}, DType::kF32);
}

// The one-group grouped GEMM (kOneGroup; kAuto's past 128 tokens here, where cuBLASLt refuses
// K = 384's three groups): one token, 130 and 301 (a partial 128-row tile).
TEST_F(LinearFp8Cuda, SmallOneGroup) { check(256, 384, {1, 130, 301}); }

// N = 160: a partial 128-row scale block and a partial 64-row tile; K = 272: a partial K group.
TEST_F(LinearFp8Cuda, SmallPartialBlocks) { check(160, 272, {1, 5, 33, 130}); }

TEST_F(LinearFp8Cuda, SmallSplitK) { check(256, 1024, {1, 8, 64}); }

// N = 1088: a 64-row half block at the end of a 128-row (two-warpgroup) tile.
TEST_F(LinearFp8Cuda, SmallTwoWarpgroups) { check(1088, 640, {3, 40, 128}); }

// f32 outputs through every kernel and plan: partial blocks, split K, two warpgroups.
TEST_F(LinearFp8Cuda, SmallF32Out) {
  check(160, 272, {1, 5, 33, 130}, DType::kF32);
  check(256, 1024, {1, 8, 64}, DType::kF32);
  check(1088, 640, {3, 40, 128}, DType::kF32);
}

TEST_F(LinearFp8Cuda, SmallNoRowsIsANoOp) {
  Tensor x = Tensor::empty({0, 256}, DType::kF8E4M3, Device::kCUDA);
  Tensor xs = Tensor::empty({0, 2}, DType::kF32, Device::kCUDA);
  Tensor w = Tensor::empty({64, 256}, DType::kF8E4M3, Device::kCUDA);
  Tensor ws = Tensor::empty({1, 2}, DType::kF32, Device::kCUDA);
  Tensor out = Tensor::empty({0, 64}, DType::kBF16, Device::kCUDA);
  linear_fp8_w8a8_cuda(x, xs, w, ws, out, stream_);
  sync();
}

TEST_F(LinearFp8Cuda, SmallBadShapesThrow) {
  Tensor x = Tensor::empty({4, 256}, DType::kF8E4M3, Device::kCUDA);
  Tensor xs = Tensor::empty({4, 2}, DType::kF32, Device::kCUDA);
  Tensor w = Tensor::empty({64, 256}, DType::kF8E4M3, Device::kCUDA);
  Tensor ws_wrong = Tensor::empty({1, 3}, DType::kF32, Device::kCUDA);
  Tensor out = Tensor::empty({4, 64}, DType::kBF16, Device::kCUDA);
  EXPECT_THROW(linear_fp8_w8a8_cuda(x, xs, w, ws_wrong, out, stream_), Error);
  Tensor x_odd = Tensor::empty({4, 200}, DType::kF8E4M3, Device::kCUDA);  // K % 16 != 0
  Tensor w_odd = Tensor::empty({64, 200}, DType::kF8E4M3, Device::kCUDA);
  Tensor ws = Tensor::empty({1, 2}, DType::kF32, Device::kCUDA);
  EXPECT_THROW(linear_fp8_w8a8_cuda(x_odd, xs, w_odd, ws, out, stream_), Error);
  Tensor x7 = Tensor::empty({7, 256}, DType::kF8E4M3, Device::kCUDA);  // cuBLASLt needs T % 4 == 0
  Tensor xs7 = Tensor::empty({7, 2}, DType::kF32, Device::kCUDA);
  Tensor out7 = Tensor::empty({7, 64}, DType::kBF16, Device::kCUDA);
  EXPECT_THROW(linear_fp8_w8a8_cuda(x7, xs7, w, ws, out7, stream_, Fp8GemmKernel::kCublasLt), Error);
}

// The scale transpose (cuBLASLt's layout) is exact.
TEST_F(LinearFp8Cuda, SmallTransposeScales) {
  std::mt19937_64 rng(fresh_seed());
  const Tensor host = random_scales({37, 45}, 1.0f, rng);  // [T, G]
  Tensor out = poisoned_gpu({45, 37}, DType::kF32, stream_);
  transpose_fp8_act_scales_cuda(host.to(Device::kCUDA), out, stream_);
  sync();
  const Tensor got = out.to(Device::kCPU);
  int64_t wrong = 0;
  for (int64_t t = 0; t < 37; ++t) {
    for (int64_t g = 0; g < 45; ++g) wrong += got.data<float>()[g * 37 + t] != host.data<float>()[t * 45 + g] ? 1 : 0;
  }
  EXPECT_EQ(wrong, 0);
}

// An activation with its scales also group-major (Fp8Activations::scales_t, a norm's FP8 form):
// cuBLASLt reads them instead of its transposed copy, the other kernels ignore them; every kernel
// gives the bits of the plain call. T = 64 and 1000 (V2-Lite's q_proj: cuBLASLt under kAuto).
TEST_F(LinearFp8Cuda, SmallCallerGroupMajorScales) {
  std::mt19937_64 rng(fresh_seed());
  for (const auto& [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{64, 576, 1024}, {1000, 3072, 2048}}) {
    const int64_t g = fp8_num_blocks(k);
    const Tensor xs_host = random_scales({m, g}, 1e-2f, rng);
    Tensor xs_t_host = Tensor::empty({g, m}, DType::kF32);
    for (int64_t t = 0; t < m; ++t) {
      for (int64_t j = 0; j < g; ++j) xs_t_host.data<float>()[j * m + t] = xs_host.data<float>()[t * g + j];
    }
    const Fp8Activations x{random_fp8({m, k}, rng).to(Device::kCUDA), xs_host.to(Device::kCUDA),
                           xs_t_host.to(Device::kCUDA)};
    const Tensor w = random_fp8({n, k}, rng).to(Device::kCUDA);
    const Tensor ws = random_scales({fp8_num_blocks(n), g}, 1e-4f, rng).to(Device::kCUDA);
    for (const Fp8GemmKernel kernel : {Fp8GemmKernel::kAuto, Fp8GemmKernel::kCublasLt, Fp8GemmKernel::kSm90SwapAB}) {
      Tensor want = poisoned_gpu({m, n}, DType::kBF16, stream_), got = poisoned_gpu({m, n}, DType::kBF16, stream_);
      linear_fp8_w8a8_cuda(x.x_q, x.scales, w, ws, want, stream_, kernel);
      linear_fp8_w8a8_cuda(x, w, ws, got, stream_, kernel);
      sync();
      const Tensor gh = got.to(Device::kCPU), wh = want.to(Device::kCPU);
      EXPECT_EQ(count_nonfinite(gh), 0);
      EXPECT_EQ(std::memcmp(gh.raw(), wh.raw(), wh.nbytes()), 0)
          << "T " << m << " N " << n << " K " << k << ", kernel " << static_cast<int>(kernel);
    }
  }
}

// Split-K sums in a fixed order, so two runs agree bit for bit (a moving result is a race); and a
// CUDA graph of both paths replays the eager results.
TEST_F(LinearFp8Cuda, SmallDeterministicAndGraphCapture) {
  std::mt19937_64 rng(fresh_seed());
  const int64_t m = 64, n = 576, k = 1024;
  const Tensor x = random_fp8({m, k}, rng).to(Device::kCUDA);
  const Tensor xs = random_scales({m, 8}, 1e-2f, rng).to(Device::kCUDA);
  const Tensor w = random_fp8({n, k}, rng).to(Device::kCUDA);
  const Tensor ws = random_scales({5, 8}, 1e-4f, rng).to(Device::kCUDA);
  std::vector<std::vector<uint16_t>> eager;
  std::vector<Tensor> outs;
  for (const Fp8GemmKernel kernel : {Fp8GemmKernel::kSm90SwapAB, Fp8GemmKernel::kCublasLt}) {
    for (int rep = 0; rep < 2; ++rep) {
      Tensor out = poisoned_gpu({m, n}, DType::kBF16, stream_);
      linear_fp8_w8a8_cuda(x, xs, w, ws, out, stream_, kernel);
      sync();
      const Tensor h = out.to(Device::kCPU);
      std::vector<uint16_t> bits(static_cast<size_t>(h.numel()));
      std::memcpy(bits.data(), h.raw(), h.nbytes());
      eager.push_back(bits);
    }
    EXPECT_EQ(eager[eager.size() - 2], eager.back()) << "kernel " << static_cast<int>(kernel) << " is not deterministic";
    outs.push_back(poisoned_gpu({m, n}, DType::kBF16, stream_));
  }
  sync();
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  MLA_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  linear_fp8_w8a8_cuda(x, xs, w, ws, outs[0], stream_, Fp8GemmKernel::kSm90SwapAB);
  linear_fp8_w8a8_cuda(x, xs, w, ws, outs[1], stream_, Fp8GemmKernel::kCublasLt);
  MLA_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  MLA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  MLA_CUDA_CHECK(cudaGraphLaunch(exec, stream_));
  sync();
  for (size_t i = 0; i < 2; ++i) {
    const Tensor h = outs[i].to(Device::kCPU);
    std::vector<uint16_t> bits(static_cast<size_t>(h.numel()));
    std::memcpy(bits.data(), h.raw(), h.nbytes());
    EXPECT_EQ(bits, eager[2 * i]) << "graph replay of kernel " << i << " differs from the eager run";
  }
  MLA_CUDA_CHECK(cudaGraphExecDestroy(exec));
  MLA_CUDA_CHECK(cudaGraphDestroy(graph));
}

// ---- the tensor-core GEMV (kGemvMma), small cases ----------------------------------------------

const std::vector<int64_t> kAllDecodeTokens = {1, 2, 3, 4, 5, 6, 7, 8};

// Every launch shape of kFp8GemvMmaConfigs, and runs of several tiles on the small problems (the
// grid from ctas_per_sm gives those one tile a CTA): uneven runs of 2 and 3, and one CTA for all.
std::vector<gpu::GemvMmaConfig> gemv_mma_configs() {
  std::vector<gpu::GemvMmaConfig> v(std::begin(sm90_fp8::kFp8GemvMmaConfigs), std::end(sm90_fp8::kFp8GemvMmaConfigs));
  v.push_back({2, 2, 3});
  v.push_back({2, 4, 5});
  v.push_back({1, 8, 16});
  return v;
}

// N = 160: a partial 128-row scale block; K = 272: a partial K group of 16 channels (3 pieces a
// tile, so a warp's stride of 8 pieces crosses tiles); N = 40: a partial 16-row tile; K = 48: one
// partial group; K = 1024: 8 full groups.
TEST_F(LinearFp8Cuda, SmallGemvMma) {
  check_gemv_mma(160, 272, kAllDecodeTokens, ActQuantParams{}, DType::kBF16, gemv_mma_configs());
  check_gemv_mma(40, 48, kAllDecodeTokens, ActQuantParams{}, DType::kBF16, gemv_mma_configs());
  check_gemv_mma(256, 1024, kAllDecodeTokens, ActQuantParams{}, DType::kBF16, gemv_mma_configs());
  check_gemv_mma(160, 272, {1, 5, 8}, ActQuantParams{kFp8AmaxFloor, Fp8ScaleFormat::kUE8M0});
  check_gemv_mma(1088, 640, kAllDecodeTokens, ActQuantParams{}, DType::kF32, gemv_mma_configs());
}

// silu_mul_linear_fp8_cuda, small: N = 160 (a partial row block), K = 272 (a partial K group), and
// K = 1024; both scale formats; f32 out; every launch shape of the one-launch form.
TEST_F(LinearFp8Cuda, SmallSwiGluDown) {
  check_swiglu_down(160, 272, kAllDecodeTokens, ActQuantParams{}, DType::kBF16, gemv_mma_configs());
  check_swiglu_down(256, 1024, {1, 2, 8}, ActQuantParams{}, DType::kBF16, gemv_mma_configs());
  check_swiglu_down(160, 272, {1, 3}, ActQuantParams{kFp8AmaxFloor, Fp8ScaleFormat::kUE8M0});
  check_swiglu_down(1088, 640, {1, 2, 5}, ActQuantParams{}, DType::kF32, gemv_mma_configs());
}

// T outside 1 .. 8 or K not a multiple of 16 is refused, and so is a bad launch shape.
TEST_F(LinearFp8Cuda, SmallGemvMmaRefusesWhatItCannotRun) {
  Tensor w = Tensor::empty({64, 256}, DType::kF8E4M3, Device::kCUDA);
  Tensor ws = Tensor::empty({1, 2}, DType::kF32, Device::kCUDA);
  Tensor x9 = Tensor::empty({9, 256}, DType::kF8E4M3, Device::kCUDA);
  Tensor xs9 = Tensor::empty({9, 2}, DType::kF32, Device::kCUDA);
  Tensor out9 = Tensor::empty({9, 64}, DType::kBF16, Device::kCUDA);
  EXPECT_THROW(linear_fp8_w8a8_cuda(x9, xs9, w, ws, out9, stream_, Fp8GemmKernel::kGemvMma), Error);
  Tensor x_odd = Tensor::empty({4, 200}, DType::kF8E4M3, Device::kCUDA);
  Tensor xs_odd = Tensor::empty({4, 2}, DType::kF32, Device::kCUDA);
  Tensor w_odd = Tensor::empty({64, 200}, DType::kF8E4M3, Device::kCUDA);
  Tensor out4 = Tensor::empty({4, 64}, DType::kBF16, Device::kCUDA);
  EXPECT_THROW(linear_fp8_w8a8_cuda(x_odd, xs_odd, w_odd, ws, out4, stream_, Fp8GemmKernel::kGemvMma), Error);
  EXPECT_FALSE(sm90_fp8::fp8_gemv_mma_fits(0, 256));
  EXPECT_FALSE(sm90_fp8::fp8_gemv_mma_fits(8, 1 << 20));  // 8 rows of 1M codes: past shared memory
  EXPECT_TRUE(sm90_fp8::fp8_gemv_mma_fits(8, 18432));     // V3's dense down
  Tensor x4 = Tensor::empty({4, 256}, DType::kF8E4M3, Device::kCUDA);
  Tensor xs4 = Tensor::empty({4, 2}, DType::kF32, Device::kCUDA);
  EXPECT_THROW(sm90_fp8::run_fp8_gemv_mma({x4.raw(), xs4.data<float>(), w.raw(), ws.data<float>(), out4.raw()}, 4,
                                          64, 256, sm90_fp8::Fp8GemvInput::kCodes, ActQuantParams{}, stream_,
                                          gpu::GemvMmaConfig{2, 3, 0}),
               Error);
}

// Two runs agree bit for bit (the warps are summed in a fixed order); a chain of three kGemvMma
// linears, each reading the bf16 output of the one before (programmatic launches: its weights
// load before the wait, its activations after), gives the same bits eagerly with and without a
// host sync between the links, and replayed from a CUDA graph.
TEST_F(LinearFp8Cuda, SmallGemvMmaDeterministicPdlChainAndGraph) {
  std::mt19937_64 rng(fresh_seed());
  constexpr int64_t kT = 8, kDim = 1088;  // square: each output feeds the next as x
  const int64_t g = fp8_num_blocks(kDim);
  std::vector<Tensor> w, ws;
  for (int i = 0; i < 3; ++i) {
    w.push_back(random_fp8({kDim, kDim}, rng).to(Device::kCUDA));
    ws.push_back(random_scales({fp8_num_blocks(kDim), g}, 2e-5f, rng).to(Device::kCUDA));
  }
  const Tensor x = testing::random_host({kT, kDim}, DType::kBF16, rng()).to(Device::kCUDA);
  const ActQuantParams act{};
  const auto bits_of = [](const Tensor& t) {
    const Tensor h = t.to(Device::kCPU);
    std::vector<uint16_t> bits(static_cast<size_t>(h.numel()));
    std::memcpy(bits.data(), h.raw(), h.nbytes());
    return bits;
  };
  // outs[i] = linear(outs[i - 1]) with outs[-1] = x; sync_each: a host sync after each link.
  const auto chain = [&](std::vector<Tensor>& outs, bool sync_each) {
    for (int i = 0; i < 3; ++i) {
      linear_fp8_cuda(i == 0 ? x : outs[i - 1], w[i], ws[i], act, outs[i], stream_, Fp8GemmKernel::kGemvMma);
      if (sync_each) sync();
    }
  };
  const auto poisoned_chain = [&] {
    std::vector<Tensor> outs;
    for (int i = 0; i < 3; ++i) outs.push_back(poisoned_gpu({kT, kDim}, DType::kBF16, stream_));
    return outs;
  };
  std::vector<Tensor> ref = poisoned_chain();
  chain(ref, true);
  sync();
  for (const Tensor& o : ref) EXPECT_EQ(count_nonfinite(o.to(Device::kCPU)), 0) << "chain output unwritten";
  std::vector<Tensor> eager = poisoned_chain();
  chain(eager, false);
  sync();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(bits_of(eager[i]), bits_of(ref[i])) << "link " << i << " without host syncs";

  // The pre-quantised kind, twice.
  const Tensor xq = random_fp8({kT, kDim}, rng).to(Device::kCUDA);
  const Tensor xs = random_scales({kT, g}, 1e-2f, rng).to(Device::kCUDA);
  std::vector<std::vector<uint16_t>> q_bits;
  for (int rep = 0; rep < 2; ++rep) {
    Tensor out = poisoned_gpu({kT, kDim}, DType::kBF16, stream_);
    linear_fp8_w8a8_cuda(xq, xs, w[0], ws[0], out, stream_, Fp8GemmKernel::kGemvMma);
    sync();
    q_bits.push_back(bits_of(out));
  }
  EXPECT_EQ(q_bits[0], q_bits[1]) << "e4m3 x: two runs differ";

  std::vector<Tensor> graph_outs = poisoned_chain();
  Tensor graph_q = poisoned_gpu({kT, kDim}, DType::kBF16, stream_);
  sync();
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  MLA_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  chain(graph_outs, false);
  linear_fp8_w8a8_cuda(xq, xs, w[0], ws[0], graph_q, stream_, Fp8GemmKernel::kGemvMma);
  MLA_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  MLA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  for (int replay = 0; replay < 3; ++replay) {
    MLA_CUDA_CHECK(cudaGraphLaunch(exec, stream_));
    sync();
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(bits_of(graph_outs[i]), bits_of(ref[i])) << "graph replay " << replay << ", link " << i;
    }
    EXPECT_EQ(bits_of(graph_q), q_bits[0]) << "graph replay " << replay << ", e4m3 x";
  }
  MLA_CUDA_CHECK(cudaGraphExecDestroy(exec));
  MLA_CUDA_CHECK(cudaGraphDestroy(graph));
}

// ---- the tensor-core GEMV at every DeepSeek projection, T = 1 .. 8 ------------------------------

// V2-Lite quantised to FP8: q_proj, kv_a_proj (and its latent and rope halves), kv_b_proj,
// o_proj, the dense gate and up (and fused), the dense down (K = 10944: a half group), the
// shared experts' gate_up and down.
TEST_F(LinearFp8Cuda, V2LiteGemvMma) {
  for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{
           {3072, 2048}, {576, 2048}, {512, 2048}, {64, 2048}, {4096, 512}, {2048, 2048}, {10944, 2048},
           {21888, 2048}, {2048, 10944}, {2816, 2048}, {5632, 2048}, {2048, 2816}}) {
    check_gemv_mma(n, k, kAllDecodeTokens, ActQuantParams{});
  }
}

// V2-Lite's all-reduced projections at TP 2 with f32 out (o_proj, dense down: K = 5472 ends in a
// 96-channel group, shared down).
TEST_F(LinearFp8Cuda, V2LiteGemvMmaTp2F32Out) {
  for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{{2048, 1024}, {2048, 5472}, {2048, 1408}}) {
    check_gemv_mma(n, k, kAllDecodeTokens, ActQuantParams{}, DType::kF32);
  }
}

// V3 / R1: q_a_proj, kv_a_proj, the fused qkv_a, q_b_proj, kv_b_proj, o_proj, the dense gate or
// up and down, the shared expert's gate or up and down.
TEST_F(LinearFp8Cuda, V3GemvMma) {
  for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{
           {1536, 7168}, {576, 7168}, {2112, 7168}, {24576, 1536}, {32768, 512}, {7168, 16384}, {18432, 7168},
           {7168, 18432}, {2048, 7168}, {7168, 2048}}) {
    check_gemv_mma(n, k, kAllDecodeTokens, ActQuantParams{});
  }
}

TEST_F(LinearFp8Cuda, V3GemvMmaTp2F32Out) {
  for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{{7168, 8192}, {7168, 9216}, {7168, 1024}}) {
    check_gemv_mma(n, k, kAllDecodeTokens, ActQuantParams{}, DType::kF32);
  }
}

// The down projections of DeepSeek's MLPs on their gate_up rows at decode sizes: V2-Lite's dense
// (K = 10944, a half group) and shared experts', V3's dense and shared expert's, and the shared
// ones of a tensor-parallel rank (V2-Lite TP 2, V3 TP 8) with f32 out.
TEST_F(LinearFp8Cuda, SwiGluDownDeepSeekShapes) {
  for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{{2048, 10944}, {2048, 2816}, {7168, 18432},
                                                                      {7168, 2048}}) {
    check_swiglu_down(n, k, {1, 2, 4, 8}, ActQuantParams{});
  }
  check_swiglu_down(2048, 1408, {1, 2}, ActQuantParams{}, DType::kF32);
  check_swiglu_down(7168, 256, {1, 2, 8}, ActQuantParams{}, DType::kF32);
}

// ---- DeepSeek shapes ([N, K] of each dense FP8 projection) -----------------------------------

const std::vector<int64_t> kTokens = {1, 3, 7, 64, 128, 1000, 4096};

// Every V3 and V2-Lite projection with bf16 activations at decode token counts.
TEST_F(LinearFp8Cuda, V3DecodeBf16Activations) {
  for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{
           {1536, 7168}, {576, 7168}, {24576, 1536}, {32768, 512}, {7168, 16384}, {18432, 7168}, {7168, 18432},
           {2048, 7168}, {7168, 2048}}) {
    check_bf16(n, k, {1, 4}, ActQuantParams{});
  }
}
TEST_F(LinearFp8Cuda, V2LiteDecodeBf16Activations) {
  for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{
           {3072, 2048}, {576, 2048}, {4096, 512}, {2048, 2048}, {10944, 2048}, {2048, 10944}, {2816, 2048},
           {2048, 2816}}) {
    check_bf16(n, k, {1, 2, 4}, ActQuantParams{});
  }
}

// A V3 tensor-parallel rank's o_proj on bf16 x with f32 out (its partial sum, all-reduced next):
// TP8's 7168 x 2048 and TP4's 7168 x 4096 at one and two tokens, where the CUDA-core GEMV takes it.
TEST_F(LinearFp8Cuda, V3TensorParallelOProjBf16F32Out) {
  for (const int64_t k : {2048, 4096}) check_bf16(7168, k, {1, 2}, ActQuantParams{}, DType::kF32);
}

// bf16 activations at prefill sizes, where kAuto takes cuBLASLt and the quantiser writes the
// scales in its layout (no transpose pass): V2-Lite's q_proj and o_proj (UE8M0 scales), V3's
// kv_a_proj (f32 out); 1000 tokens, every row checked.
TEST_F(LinearFp8Cuda, PrefillBf16ActivationsThroughCublasLt) {
  ASSERT_EQ(sm90_fp8::choose_fp8_gemm(1000, 3072, 2048, sm90_fp8::swap_ab_gpu()), sm90_fp8::Fp8GemmPath::kCublasLt);
  check_bf16(3072, 2048, {1000}, ActQuantParams{});
  check_bf16(576, 7168, {1000}, ActQuantParams{}, DType::kF32);
  check_bf16(2048, 2048, {1000}, ActQuantParams{kFp8AmaxFloor, Fp8ScaleFormat::kUE8M0});
}

// V3 / R1 (hidden 7168, q_lora 1536, kv_lora 512, 128 heads, dense MLP 18432, shared expert 2048).
TEST_F(LinearFp8Cuda, V3QAProj) { check(1536, 7168, kTokens); }
TEST_F(LinearFp8Cuda, V3KvAProj) { check(576, 7168, kTokens); }
TEST_F(LinearFp8Cuda, V3QkvAFused) { check(2112, 7168, kTokens); }
TEST_F(LinearFp8Cuda, V3QBProj) { check(24576, 1536, kTokens); }
// 40 tokens: a partial token tile in the three-CTA persistent plan (also run under compute-sanitizer).
TEST_F(LinearFp8Cuda, V3QBProjThreeCtasAnSm) { check(24576, 1536, {40}); }
TEST_F(LinearFp8Cuda, V3KvBProj) { check(32768, 512, kTokens); }
TEST_F(LinearFp8Cuda, V3OProj) { check(7168, 16384, kTokens); }
TEST_F(LinearFp8Cuda, V3DenseGateOrUp) { check(18432, 7168, kTokens); }
TEST_F(LinearFp8Cuda, V3DenseDown) { check(7168, 18432, kTokens); }
TEST_F(LinearFp8Cuda, V3SharedGateOrUp) { check(2048, 7168, kTokens); }
TEST_F(LinearFp8Cuda, V3SharedDown) { check(7168, 2048, kTokens); }

// V2-Lite quantised to FP8 (hidden 2048, no q_lora, kv_lora 512, 16 heads, dense MLP 10944,
// 2 shared experts of 1408).
TEST_F(LinearFp8Cuda, V2LiteQProj) { check(3072, 2048, kTokens); }
TEST_F(LinearFp8Cuda, V2LiteKvAProj) { check(576, 2048, kTokens); }
TEST_F(LinearFp8Cuda, V2LiteKvBProj) { check(4096, 512, kTokens); }
TEST_F(LinearFp8Cuda, V2LiteOProj) { check(2048, 2048, kTokens); }
TEST_F(LinearFp8Cuda, V2LiteDenseGateOrUp) { check(10944, 2048, kTokens); }
TEST_F(LinearFp8Cuda, V2LiteDenseDown) { check(2048, 10944, kTokens); }
TEST_F(LinearFp8Cuda, V2LiteSharedGateOrUp) { check(2816, 2048, kTokens); }
TEST_F(LinearFp8Cuda, V2LiteSharedDown) { check(2048, 2816, kTokens); }
// 100 tokens: two token tiles of 64, the second partial (swap_ab_two_token_tiles).
TEST_F(LinearFp8Cuda, V2LiteOProjTwoTokenTiles) { check(2048, 2048, {100}); }

// f32 outputs at the projections whose outputs are all-reduced under tensor parallelism (o_proj,
// the dense and shared down projections), at their TP-2 shapes (K halved).
TEST_F(LinearFp8Cuda, V3OProjTp2F32Out) { check(7168, 8192, kTokens, DType::kF32); }
TEST_F(LinearFp8Cuda, V3DenseDownTp2F32Out) { check(7168, 9216, kTokens, DType::kF32); }
TEST_F(LinearFp8Cuda, V3SharedDownTp2F32Out) { check(7168, 1024, kTokens, DType::kF32); }
TEST_F(LinearFp8Cuda, V2LiteOProjTp2F32Out) { check(2048, 1024, kTokens, DType::kF32); }

}  // namespace
}  // namespace mlaserve::ops
