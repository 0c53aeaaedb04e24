// linear_cuda and the MLA absorption matmuls against their CPU references, on fresh random bf16
// inputs at DeepSeek's shapes: kv_a_proj_with_mqa 576 x 2048 / 7168 (and its two row views),
// q_b_proj 24576 x 1536, o_proj 7168 x 16384, lm_head 102400 x 2048 with f32 logits, routers
// 64 x 2048 / 256 x 7168 with f32 logits; T = 1, 7, 64, 300, 4096; absorption with 16 and 128
// heads (up to 8 tokens the per-head GEMVs: T = 1 .. 9; from 9 to 256 the W_UK absorption's
// mma.sync kernel, mla_absorb_mma.cuh: T = 9 .. 257 around its 64-row blocks; past that, and for
// the up-projection past 8, cuBLASLt). Outputs are poisoned (NaN) first and must be fully
// written; the q_pe channels of q_abs are checked bit for bit. At large T only some rows are
// checked against the CPU (first, last, random ones): lm_head at 4096 rows is 1.7 TFLOP, minutes
// on one CPU core, and a wrong tile, stride or view shows in any row. The last test captures
// every GEMM-shaped op in a CUDA graph and replays it.
//
// Chains (the decode kernels, which load their weights before griddepcontrol.wait): a GEMV, or
// the absorption kernels, right after a GEMM that writes their input, both launched as in a
// decode step, eagerly and as a CUDA graph replayed twice. For the GEMVs (the CUDA-core kernel,
// forced: from 2 tokens linear_cuda takes the tensor-core one, whose own tests are in
// linear_gemv_mma_cuda_test.cc) the second kernel's output must be, bit for bit, what the
// kernel's own summation order gives on the first's GPU output (gemv_kernel_order.h: the order
// the kernels had before their loads moved ahead of the wait); every chain's output must be close
// to the CPU reference; a read of the input before the first kernel wrote it reads the poison
// (NaN) it was filled with. The small GEMV shape cases run each GEMV kernel by name.
//
// Tolerances, from the precision, the same for every path (the MMA kernel's included: K = dn =
// 128 products summed in fp32 by the tensor cores, one bf16 rounding): both sides see the same
// bf16 inputs; the products are exact in fp32 and both sides accumulate in fp32 (different
// orders: ~1e-6 relative). A bf16 output is rounded once, a relative error of at most 2^-8 and
// about 1.6e-3 RMS for values spread over a binade, so 4e-3 over all checked rows and 6e-3 for
// any single row. f32 outputs carry only the summation order: 1e-4 (a bf16 rounding anywhere
// would cost 1.6e-3).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "gemm_cuda_test_util.h"
#include "gemv_kernel_order.h"
#include "ops/cuda/linear_gemv.h"
#include "ops/cuda/mla_absorb_gemv.h"
#include "ops/cuda/mla_absorb_mma.h"
#include "ops/linear.h"
#include "ops/mla_absorb.h"
#include "ops/moe_experts.h"

namespace mlaserve::ops {
namespace {

using testing::compare_rows;
using testing::count_nonfinite;
using testing::expect_close;
using testing::fill_random;
using testing::fresh_seed;
using gpu::kAbsorbGemvMaxTokens;
using testing::linear_gemv_kernel_order;
using testing::mla_absorb_kernel_order;
using testing::mla_up_kernel_order;
using testing::gather_rows_f32;
using testing::poisoned_gpu;
using testing::random_host;
using testing::rows_to_check;

constexpr double kBf16RelL2 = 4e-3, kBf16Row = 6e-3;
constexpr double kF32RelL2 = 1e-4, kF32Row = 2e-4;

// Which path check_absorb's query absorption takes: mla_absorb_query's own choice, or cuBLASLt
// forced (mla_absorb_query_cublaslt, the benchmarks' reference).
enum class AbsorbPath { kDispatch, kCublaslt };

class GemmCuda : public testing::Sm90StreamTest {
 protected:
  // One weight [n, k] (or its rows [w_begin, w_end)) against x of each row count in ms (x a
  // row view starting at row x_offset of a larger tensor when x_offset > 0). The GPU runs every
  // case (through linear, or the GEMV kernel `gemv` names), then one CPU reference call covers the
  // checked rows of all of them.
  void check_linear(int64_t n_full, int64_t k, DType ab, DType out_dtype, const std::vector<int64_t>& ms,
                    int64_t w_begin = 0, int64_t w_end = -1, int64_t x_offset = 0,
                    GemvKernel gemv = GemvKernel::kAuto) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    if (w_end < 0) w_end = n_full;
    const int64_t n = w_end - w_begin;
    Tensor w_gpu = Tensor::empty({n_full, k}, ab, Device::kCUDA);  // [N, K]
    fill_random(w_gpu, seed, stream_);
    const Tensor w_host = random_host({n_full, k}, ab, seed).slice(w_begin, w_end);
    const Tensor w_view = w_gpu.slice(w_begin, w_end);

    std::mt19937_64 rng(seed);
    std::vector<Tensor> got_rows;
    std::vector<std::vector<int64_t>> checked;
    std::vector<Tensor> x_rows;
    for (size_t i = 0; i < ms.size(); ++i) {
      const int64_t m = ms[i];
      const uint64_t x_seed = seed + 1 + i;
      Tensor x_gpu = Tensor::empty({x_offset + m, k}, ab, Device::kCUDA);
      fill_random(x_gpu, x_seed, stream_);
      const Tensor x_host = random_host({x_offset + m, k}, ab, x_seed).slice(x_offset, x_offset + m);
      Tensor out = poisoned_gpu({m, n}, out_dtype, stream_);
      if (gemv == GemvKernel::kAuto) {
        linear(x_gpu.slice(x_offset, x_offset + m), w_view, out, Stream{stream_});
      } else {
        linear_gemv_cuda(x_gpu.slice(x_offset, x_offset + m), w_view, out, stream_, gemv);
      }
      sync();
      const Tensor out_host = out.to(Device::kCPU);
      EXPECT_EQ(count_nonfinite(out_host), 0) << "M = " << m << ": outputs unwritten (poison) or not finite";
      checked.push_back(rows_to_check(m, rng));
      got_rows.push_back(gather_rows_f32(out_host, checked.back()));
      x_rows.push_back(gather_rows_f32(x_host, checked.back()));
    }

    int64_t total = 0;
    for (const auto& r : checked) total += static_cast<int64_t>(r.size());
    Tensor x_all = Tensor::empty({total, k}, DType::kF32);  // the checked rows of every case
    int64_t at = 0;
    for (const Tensor& x : x_rows) {
      std::memcpy(x_all.data<float>() + at * k, x.data<float>(), x.nbytes());
      at += x.dim(0);
    }
    Tensor ref = Tensor::empty({total, n}, DType::kF32);
    linear_cpu(x_all, w_host, ref);

    at = 0;
    for (size_t i = 0; i < ms.size(); ++i) {
      const auto rows = static_cast<int64_t>(checked[i].size());
      const bool bf16_out = out_dtype == DType::kBF16;
      expect_close(compare_rows(got_rows[i], ref.slice(at, at + rows), checked[i]), bf16_out ? kBf16RelL2 : kF32RelL2,
                   bf16_out ? kBf16Row : kF32Row,
                   "M " + std::to_string(ms[i]) + " N " + std::to_string(n) + " K " + std::to_string(k) + " " +
                       std::string(dtype_name(ab)) + "->" + std::string(dtype_name(out_dtype)));
      at += rows;
    }
  }

  // mla_absorb_query and mla_up_project_output for t tokens and n heads (DeepSeek's dn 128,
  // dr 64, dv 128, dc 512 unless given), q / o_lat as row views of larger tensors when offset > 0.
  void check_absorb(int64_t t, int64_t n, int64_t offset = 0, int64_t dc = 512, int64_t dv = 128,
                    AbsorbPath path = AbsorbPath::kDispatch) {
    constexpr int64_t kDn = 128, kDr = 64;
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + ", T " + std::to_string(t) + ", heads " + std::to_string(n));
    Tensor w_gpu = Tensor::empty({n * (kDn + dv), dc}, DType::kBF16, Device::kCUDA);  // kv_b_proj
    fill_random(w_gpu, seed, stream_);
    const Tensor w_host = random_host({n * (kDn + dv), dc}, DType::kBF16, seed);

    // Query: [T, n, 192] -> [T, n, 576].
    Tensor q_gpu = Tensor::empty({offset + t, n, kDn + kDr}, DType::kBF16, Device::kCUDA);
    fill_random(q_gpu, seed + 1, stream_);
    const Tensor q_host = random_host({offset + t, n, kDn + kDr}, DType::kBF16, seed + 1).slice(offset, offset + t);
    Tensor q_abs = poisoned_gpu({t, n, dc + kDr}, DType::kBF16, stream_);
    if (path == AbsorbPath::kCublaslt) {
      mla_absorb_query_cublaslt(q_gpu.slice(offset, offset + t), w_gpu, q_abs, stream_);
    } else {
      mla_absorb_query(q_gpu.slice(offset, offset + t), w_gpu, q_abs, Stream{stream_});
    }

    // Output: [T, n, 512] -> [T, n, 128].
    Tensor lat_gpu = Tensor::empty({offset + t, n, dc}, DType::kBF16, Device::kCUDA);
    fill_random(lat_gpu, seed + 2, stream_);
    const Tensor lat_host = random_host({offset + t, n, dc}, DType::kBF16, seed + 2).slice(offset, offset + t);
    Tensor o = poisoned_gpu({t, n, dv}, DType::kBF16, stream_);
    mla_up_project_output(lat_gpu.slice(offset, offset + t), w_gpu, o, Stream{stream_});
    sync();

    const Tensor q_abs_host = q_abs.to(Device::kCPU), o_host = o.to(Device::kCPU);
    EXPECT_EQ(count_nonfinite(q_abs_host), 0) << "q_abs unwritten (poison) or not finite";
    EXPECT_EQ(count_nonfinite(o_host), 0) << "o unwritten (poison) or not finite";

    Tensor q_ref = Tensor::empty({t, n, dc + kDr}, DType::kF32);
    mla_absorb_query_cpu(q_host.to_f32(), w_host, q_ref);
    Tensor o_ref = Tensor::empty({t, n, dv}, DType::kF32);
    mla_up_project_output_cpu(lat_host.to_f32(), w_host, o_ref);

    std::vector<int64_t> all(static_cast<size_t>(t));
    for (int64_t i = 0; i < t; ++i) all[i] = i;
    const std::string where = " T " + std::to_string(t) + " heads " + std::to_string(n);
    expect_close(compare_rows(q_abs_host.to_f32(), q_ref, all), kBf16RelL2, kBf16Row, "q_abs" + where);
    expect_close(compare_rows(o_host.to_f32(), o_ref, all), kBf16RelL2, kBf16Row, "o" + where);

    // q_pe is copied, bit for bit.
    const bfloat16* got = q_abs_host.data<bfloat16>();
    const bfloat16* want = q_host.data<bfloat16>();
    int64_t mismatches = 0;
    for (int64_t r = 0; r < t * n; ++r) {
      for (int64_t c = 0; c < kDr; ++c) {
        mismatches += got[r * (dc + kDr) + dc + c].bits != want[r * (kDn + kDr) + kDn + c].bits ? 1 : 0;
      }
    }
    EXPECT_EQ(mismatches, 0) << "q_pe channels of q_abs differ from q";
  }

  // Elements of got (a host tensor, bf16 or f32) whose bits differ from want's (f32 values,
  // rounded to bf16 for a bf16 tensor), reported with the first one.
  static int64_t bit_mismatches(const Tensor& got, const std::vector<float>& want, const std::string& what) {
    int64_t bad = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      const uint32_t g = got.dtype() == DType::kF32 ? float_bits(got.data<float>()[i]) : got.data<bfloat16>()[i].bits;
      const uint32_t w = got.dtype() == DType::kF32 ? float_bits(want[i]) : float_to_bf16(want[i]).bits;
      if (g != w && bad++ == 0) ADD_FAILURE() << what << ": element " << i << " has bits " << g << ", want " << w;
    }
    return bad;
  }
  // The same for bf16 rows of `width` values `stride` apart in got (q_abs's latent channels).
  static int64_t bit_mismatches(const Tensor& got, const std::vector<uint16_t>& want, int64_t width, int64_t stride,
                                const std::string& what) {
    int64_t bad = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      const int64_t r = static_cast<int64_t>(i) / width, c = static_cast<int64_t>(i) % width;
      const uint16_t g = got.data<bfloat16>()[r * stride + c].bits;
      if (g != want[i] && bad++ == 0) ADD_FAILURE() << what << ": row " << r << " col " << c << " has bits " << g << ", want " << want[i];
    }
    return bad;
  }

  // y1 [t, n1] bf16 = x [t, k1] · W1ᵀ, then y2 [t, n2] = y1 · W2ᵀ (out2: bf16 or f32), the two
  // GEMVs back to back (see the chains note at the top). With `prefetch` the second GEMV pulls two
  // regions into L2 before its wait, as o_proj's does in the model (ops/l2_prefetch.h): W1, and a
  // region of another buffer whose start and size are not whole 128-byte lines.
  void check_gemv_chain(int64_t t, int64_t k1, int64_t n1, int64_t n2, DType out2, bool prefetch = false) {
    const uint64_t seed = fresh_seed();
    const std::string where = "chain T " + std::to_string(t) + ": [" + std::to_string(n1) + " x " +
                              std::to_string(k1) + "] then [" + std::to_string(n2) + " x " + std::to_string(n1) +
                              "] -> " + std::string(dtype_name(out2)) + (prefetch ? ", L2 prefetches" : "");
    SCOPED_TRACE("seed " + std::to_string(seed) + ", " + where);
    testing::GemvChainOperands c = testing::gemv_chain_operands(t, k1, n1, n2, out2, seed, stream_);
    const Tensor &x = c.x, &w1 = c.w1, &w2 = c.w2, &x_host = c.x_host, &w1_host = c.w1_host, &w2_host = c.w2_host;
    Tensor &y1 = c.y1, &y2 = c.y2;
    ASSERT_TRUE(linear_gemv_applies(x, w1, y1) && linear_gemv_applies(y1, w2, y2)) << where << ": not the GEMV path";

    Tensor other;  // alive through the runs below
    L2Prefetches regions{};
    if (prefetch) {
      other = Tensor::empty({100'003}, DType::kBF16, Device::kCUDA);  // 200,006 bytes
      regions = {{{w1.raw(), w1.nbytes()}, {static_cast<const char*>(other.raw()) + 2, other.nbytes() - 2 - 60}}};
    }
    const std::vector<Tensor> got = eager_then_graph(
        [&] {
          linear_gemv_cuda(x, w1, y1, stream_, GemvKernel::kCudaCore);
          linear_gemv_cuda(y1, w2, y2, stream_, GemvKernel::kCudaCore, regions);
        },
        {&y1, &y2});
    const Tensor &y1_host = got[0], &y2_host = got[1];
    EXPECT_EQ(count_nonfinite(y1_host), 0) << where << ": y1 unwritten (poison) or not finite";
    EXPECT_EQ(count_nonfinite(y2_host), 0) << where << ": y2 read y1 before it was written, or is unwritten";
    EXPECT_EQ(bit_mismatches(y1_host, linear_gemv_kernel_order(x_host.data<bfloat16>(), w1_host.data<bfloat16>(), t, n1, k1),
                             where + ", y1"),
              0);
    EXPECT_EQ(bit_mismatches(y2_host, linear_gemv_kernel_order(y1_host.data<bfloat16>(), w2_host.data<bfloat16>(), t, n2, n1),
                             where + ", y2"),
              0);
    Tensor ref = Tensor::empty({t, n2}, DType::kF32);
    linear_cpu(y1_host.to_f32(), w2_host, ref);
    std::vector<int64_t> all(static_cast<size_t>(t));
    for (int64_t i = 0; i < t; ++i) all[i] = i;
    const bool bf16_out = out2 == DType::kBF16;
    expect_close(compare_rows(y2_host.to_f32(), ref, all), bf16_out ? kBf16RelL2 : kF32RelL2,
                 bf16_out ? kBf16Row : kF32Row, where + " against linear_cpu");
  }

  // The query and the attention output as the model makes them for the absorption GEMVs: q
  // [t, n·192] and o_lat [t, n·dc] written by a GEMV of x [t, hidden] just before
  // mla_absorb_query / mla_up_project_output (see the chains note at the top).
  void check_absorb_chain(int64_t t, int64_t n, int64_t hidden, int64_t dc = 512, int64_t dv = 128) {
    constexpr int64_t kDn = 128, kDr = 64;
    const int64_t rph = kDn + dv;
    const uint64_t seed = fresh_seed();
    const std::string where = "absorb chain T " + std::to_string(t) + " heads " + std::to_string(n);
    SCOPED_TRACE("seed " + std::to_string(seed) + ", " + where);
    auto gpu = [&](const Shape& shape, uint64_t s) {
      Tensor g = Tensor::empty(shape, DType::kBF16, Device::kCUDA);
      fill_random(g, s, stream_);
      return g;
    };
    const Tensor x = gpu({t, hidden}, seed), w_q = gpu({n * (kDn + kDr), hidden}, seed + 1);
    const Tensor w_lat = gpu({n * dc, hidden}, seed + 2), kv_b = gpu({n * rph, dc}, seed + 3);
    const Tensor kv_b_host = random_host({n * rph, dc}, DType::kBF16, seed + 3);
    Tensor q = poisoned_gpu({t, n * (kDn + kDr)}, DType::kBF16, stream_), lat = poisoned_gpu({t, n * dc}, DType::kBF16, stream_);
    Tensor q_abs = poisoned_gpu({t, n, dc + kDr}, DType::kBF16, stream_), o = poisoned_gpu({t, n, dv}, DType::kBF16, stream_);

    const std::vector<Tensor> got = eager_then_graph(
        [&] {
          linear_cuda(x, w_q, q, stream_);
          mla_absorb_query_cuda(q.reshape({t, n, kDn + kDr}), kv_b, q_abs, stream_);
          linear_cuda(x, w_lat, lat, stream_);
          mla_up_project_output_cuda(lat.reshape({t, n, dc}), kv_b, o, stream_);
        },
        {&q, &lat, &q_abs, &o});
    const Tensor &q_host = got[0], &lat_host = got[1], &q_abs_host = got[2], &o_host = got[3];
    EXPECT_EQ(count_nonfinite(q_abs_host), 0) << where << ": q_abs read q before it was written, or is unwritten";
    EXPECT_EQ(count_nonfinite(o_host), 0) << where << ": o read o_lat before it was written, or is unwritten";
    if (t <= kAbsorbGemvMaxTokens) {  // the GEMVs' summation order; past it only the CPU comparison
      EXPECT_EQ(bit_mismatches(q_abs_host,
                             mla_absorb_kernel_order(q_host.data<bfloat16>(), kv_b_host.data<bfloat16>(), t, n, kDn, kDr,
                                                     dc, rph),
                             dc, dc + kDr, where + ", q_abs"),
              0);
      EXPECT_EQ(bit_mismatches(o_host,
                               mla_up_kernel_order(lat_host.data<bfloat16>(), kv_b_host.data<bfloat16>(), t, n, kDn, dv,
                                                   dc, rph),
                               dv, dv, where + ", o"),
                0);
    }

    Tensor q_ref = Tensor::empty({t, n, dc + kDr}, DType::kF32), o_ref = Tensor::empty({t, n, dv}, DType::kF32);
    mla_absorb_query_cpu(q_host.reshape({t, n, kDn + kDr}).to_f32(), kv_b_host, q_ref);
    mla_up_project_output_cpu(lat_host.reshape({t, n, dc}).to_f32(), kv_b_host, o_ref);
    std::vector<int64_t> all(static_cast<size_t>(t));
    for (int64_t i = 0; i < t; ++i) all[i] = i;
    expect_close(compare_rows(q_abs_host.to_f32(), q_ref, all), kBf16RelL2, kBf16Row, where + ", q_abs against the CPU");
    expect_close(compare_rows(o_host.to_f32(), o_ref, all), kBf16RelL2, kBf16Row, where + ", o against the CPU");
  }
};

// ---- small cases (also run under compute-sanitizer) ------------------------------------------

TEST_F(GemmCuda, SmallLinearBf16) {
  check_linear(96, 64, DType::kBF16, DType::kBF16, {1, 5, 33});
  check_linear(96, 64, DType::kBF16, DType::kF32, {1, 5, 33});
}

TEST_F(GemmCuda, SmallLinearViewsAndF32) {
  check_linear(96, 64, DType::kBF16, DType::kBF16, {7}, /*w_begin=*/64, /*w_end=*/96, /*x_offset=*/3);
  check_linear(80, 48, DType::kF32, DType::kF32, {1, 9});
}

TEST_F(GemmCuda, SmallLinearNoRowsIsANoOp) {
  Tensor x = Tensor::empty({0, 64}, DType::kBF16, Device::kCUDA);
  Tensor w = Tensor::empty({32, 64}, DType::kBF16, Device::kCUDA);
  Tensor out = Tensor::empty({0, 32}, DType::kBF16, Device::kCUDA);
  linear(x, w, out, Stream{stream_});
  sync();
}

// The GEMV path (T <= 8), through linear and through each kernel by name: N not a multiple of the
// CUDA-core CTA's 4 rows, K not a multiple of its warp's 256-value chunk, every kernel width (1,
// 2, 4, 8 tokens) and the counts between them, a row view of the weight and of x.
TEST_F(GemmCuda, SmallLinearGemvShapes) {
  for (GemvKernel kernel : {GemvKernel::kAuto, GemvKernel::kCudaCore, GemvKernel::kTensorCore}) {
    SCOPED_TRACE(gemv_kernel_name(kernel));
    check_linear(37, 40, DType::kBF16, DType::kBF16, {1, 2, 3, 4, 5, 8}, 0, -1, 0, kernel);
    check_linear(37, 296, DType::kBF16, DType::kF32, {1, 2, 3, 4, 5, 8}, 0, -1, 0, kernel);
    check_linear(96, 64, DType::kBF16, DType::kBF16, {6}, /*w_begin=*/61, /*w_end=*/96, /*x_offset=*/3, kernel);
  }
}

// The CUDA-core GEMV's multi-chunk steps (gemv_unroll): K of 9 chunks (2 a warp, the last
// partial), 17 (4 a warp; 2 for 8 tokens, in two steps), 33 (two steps of 4, one chunk in the
// second).
TEST_F(GemmCuda, SmallLinearGemvUnrolledSteps) {
  check_linear(37, 2056, DType::kBF16, DType::kBF16, {1, 2, 8}, 0, -1, 0, GemvKernel::kCudaCore);
  check_linear(21, 4104, DType::kBF16, DType::kF32, {1, 3, 8}, 0, -1, 0, GemvKernel::kCudaCore);
  check_linear(13, 8200, DType::kBF16, DType::kBF16, {2, 5}, 0, -1, 0, GemvKernel::kCudaCore);
}

TEST_F(GemmCuda, SmallLinearGemvApplies) {
  const Tensor x = Tensor::empty({8, 64}, DType::kBF16, Device::kCUDA), w = Tensor::empty({32, 64}, DType::kBF16, Device::kCUDA);
  const Tensor y = Tensor::empty({8, 32}, DType::kF32, Device::kCUDA);
  EXPECT_TRUE(linear_gemv_applies(x, w, y));
  EXPECT_TRUE(linear_gemv_applies(x.slice(0, 1), w, y.slice(0, 1)));
  const Tensor x9 = Tensor::empty({9, 64}, DType::kBF16, Device::kCUDA);
  EXPECT_FALSE(linear_gemv_applies(x9, w, Tensor::empty({9, 32}, DType::kF32, Device::kCUDA)));  // 9 tokens
  const Tensor xf = Tensor::empty({8, 64}, DType::kF32, Device::kCUDA), wf = Tensor::empty({32, 64}, DType::kF32, Device::kCUDA);
  EXPECT_FALSE(linear_gemv_applies(xf, wf, y));  // f32 operands: cuBLASLt's exact fp32 path
  Tensor out = Tensor::empty({9, 32}, DType::kF32, Device::kCUDA);
  EXPECT_THROW(linear_gemv_cuda(x9, w, out, stream_), Error);
}

TEST_F(GemmCuda, SmallAbsorb) {
  check_absorb(3, 2);
  check_absorb(5, 2, /*offset=*/2);
}

// Up to 8 tokens the per-head GEMVs run (mla_absorb_gemv.cuh): a latent width that leaves a
// partial column block (136 = 128 + 8) and a partial 256-column chunk, a value width that leaves
// a partial block of rows (120 = 7 x 16 + 8), and 9 tokens (cuBLASLt again).
TEST_F(GemmCuda, SmallAbsorbGemvEdges) {
  check_absorb(1, 3, 0, /*dc=*/136, /*dv=*/120);
  check_absorb(8, 3, /*offset=*/1, /*dc=*/136, /*dv=*/120);
  check_absorb(9, 2, 0, /*dc=*/136, /*dv=*/120);
}

// From 9 to 256 tokens the W_UK absorption runs the mma.sync kernel (mla_absorb_mma.cuh): its
// first T, a partial m16 tile and a partial 64-row block (T 70 = 64 + 6, a row view), two column
// blocks (dc 256), T 256 (four full row blocks) at 2 heads; dc 136 (not a multiple of 128) keeps
// cuBLASLt (SmallAbsorbGemvEdges' T 9), and so does mla_absorb_query_cublaslt at any T.
TEST_F(GemmCuda, SmallAbsorbMma) {
  check_absorb(9, 2);
  check_absorb(70, 3, /*offset=*/2);
  check_absorb(17, 2, 0, /*dc=*/256, /*dv=*/120);
  check_absorb(256, 2, /*offset=*/1);
  check_absorb(70, 3, /*offset=*/2, 512, 128, AbsorbPath::kCublaslt);
}

// Host-only: which problems the kernel takes (no GPU needed).
TEST(GemmCudaHost, SmallAbsorbMmaApplies) {
  gpu::MlaAbsorbGemvParams p{};
  alignas(16) static const __nv_bfloat16 buf[8] = {};
  p.q = buf;
  p.w = buf;
  p.q_abs = const_cast<__nv_bfloat16*>(buf);  // never written: only the shapes are looked at
  p.t = 9, p.n = 16, p.dn = 128, p.dr = 64, p.dc = 512, p.rph = 256;
  EXPECT_TRUE(gpu::mla_absorb_mma_applies(p));
  p.t = 256;
  EXPECT_TRUE(gpu::mla_absorb_mma_applies(p));
  p.t = 257;
  EXPECT_FALSE(gpu::mla_absorb_mma_applies(p));  // cuBLASLt past 256 rows
  p.t = 64, p.dc = 136;
  EXPECT_FALSE(gpu::mla_absorb_mma_applies(p));
  p.dc = 512, p.dn = 120;
  EXPECT_FALSE(gpu::mla_absorb_mma_applies(p));
  p.dn = 128, p.q = buf + 1;
  EXPECT_FALSE(gpu::mla_absorb_mma_applies(p));  // unaligned q
}

// Chains (the note at the top): K of a partial chunk (296) and a partial step (520), every kernel
// width, f32 and bf16 second outputs; a second GEMV of K = 8200 (33 chunks: two steps at one
// token, the second's rows prefetched into L2 before the wait); the absorption GEMVs at 2 heads
// with partial column and row blocks.
TEST_F(GemmCuda, SmallGemvChainBitExact) {
  for (int64_t t : {1, 2, 3, 8}) check_gemv_chain(t, 296, 520, 37, DType::kF32);
  check_gemv_chain(5, 296, 520, 37, DType::kBF16);
  for (int64_t t : {1, 8}) check_gemv_chain(t, 64, 8200, 13, DType::kBF16);
  check_absorb_chain(1, 2, 256);
  check_absorb_chain(8, 2, 256, /*dc=*/136, /*dv=*/120);
}

// The same GEMV chains with the second GEMV's CTAs prefetching into L2 before their wait (the
// model's o_proj, ops/l2_prefetch.h): the same bits, the same order.
TEST_F(GemmCuda, SmallGemvChainWithL2PrefetchesBitExact) {
  for (int64_t t : {1, 2, 3}) check_gemv_chain(t, 296, 520, 37, DType::kF32, /*prefetch=*/true);
  check_gemv_chain(1, 2048, 2048, 2048, DType::kBF16, /*prefetch=*/true);  // V2-Lite's o_proj shape
}

// The absorption's mma.sync kernel (9 to 256 tokens) right after the cuBLASLt GEMM that writes its
// query, launched with programmatic dependent launch, eagerly and as a graph: a read of q before
// the wait would read the poison. Compared with the CPU only (its summation order is the tensor
// cores', not the GEMVs').
TEST_F(GemmCuda, SmallAbsorbMmaChain) {
  check_absorb_chain(9, 2, 256);
  check_absorb_chain(70, 2, 256);
}

// ---- DeepSeek shapes -------------------------------------------------------------------------

const std::vector<int64_t> kTokens = {1, 7, 64, 300, 4096};

TEST_F(GemmCuda, LinearKvAProjH2048) { check_linear(576, 2048, DType::kBF16, DType::kBF16, kTokens); }

TEST_F(GemmCuda, LinearKvAProjH7168) { check_linear(576, 7168, DType::kBF16, DType::kBF16, kTokens); }

// The model runs kv_a_proj_with_mqa as two row views ([0, 512) latent, [512, 576) rope key).
TEST_F(GemmCuda, LinearKvAProjRowViews) {
  check_linear(576, 7168, DType::kBF16, DType::kBF16, {7, 300}, 0, 512, /*x_offset=*/5);
  check_linear(576, 7168, DType::kBF16, DType::kBF16, {7, 300}, 512, 576, /*x_offset=*/5);
}

TEST_F(GemmCuda, LinearQBProj) { check_linear(24576, 1536, DType::kBF16, DType::kBF16, kTokens); }

TEST_F(GemmCuda, LinearOProj) { check_linear(7168, 16384, DType::kBF16, DType::kBF16, kTokens); }

// Tensor parallelism writes o_proj's partial output in f32 (all-reduced, then rounded once): TP-2's
// half of V3's o_proj.
TEST_F(GemmCuda, LinearOProjTp2F32Out) { check_linear(7168, 8192, DType::kBF16, DType::kF32, kTokens); }

TEST_F(GemmCuda, LinearLmHeadF32Logits) { check_linear(102400, 2048, DType::kBF16, DType::kF32, kTokens); }

TEST_F(GemmCuda, LinearRouterF32Logits) {
  check_linear(64, 2048, DType::kBF16, DType::kF32, {1, 300, 4096});   // V2-Lite
  check_linear(256, 7168, DType::kBF16, DType::kF32, {1, 300, 4096});  // V3
}

// Decode batches through the GEMV path at DeepSeek-V2-Lite's and V3's decode shapes: q_proj,
// kv_a (and its rope-key row view), o_proj, the shared experts' gate_up and down (K = 2816: a
// partial last chunk), the dense MLP's down (K = 10944), V3's q_a / q_b, the routers and lm_head in f32.
TEST_F(GemmCuda, LinearGemvDecodeShapes) {
  const std::vector<int64_t> decode = {1, 2, 3, 4, 6, 8};
  check_linear(3072, 2048, DType::kBF16, DType::kBF16, decode);
  check_linear(576, 2048, DType::kBF16, DType::kBF16, decode);
  check_linear(576, 2048, DType::kBF16, DType::kBF16, {1, 5}, 512, 576, /*x_offset=*/2);
  check_linear(2048, 2048, DType::kBF16, DType::kBF16, decode);
  check_linear(5632, 2048, DType::kBF16, DType::kBF16, decode);
  check_linear(2048, 2816, DType::kBF16, DType::kBF16, decode);
  check_linear(2048, 10944, DType::kBF16, DType::kBF16, {1, 8});
  check_linear(1536, 7168, DType::kBF16, DType::kBF16, {1, 8});
  check_linear(24576, 1536, DType::kBF16, DType::kBF16, {1, 8});
  check_linear(64, 2048, DType::kBF16, DType::kF32, decode);
  check_linear(256, 7168, DType::kBF16, DType::kF32, decode);
  check_linear(102400, 2048, DType::kBF16, DType::kF32, {1, 8});
}

// The decode step's GEMV chains at V2-Lite's shapes (H 2048), each GEMV's input written by the
// GEMV before it: o_proj then q_proj; the shared experts' gate_up then down (K 2816: two chunks a
// warp); o_proj then the router (f32 logits); the dense MLP's gate_up then down (K 10944: two
// steps at 1 token, the second's rows prefetched before the wait); and q_proj / o_proj-sized
// latents feeding the absorption GEMVs at 16 heads.
TEST_F(GemmCuda, GemvChainDecodeShapes) {
  for (int64_t t : {1, 2, 5, 8}) {
    check_gemv_chain(t, 2048, 2048, 3072, DType::kBF16);
    check_gemv_chain(t, 2048, 2816, 2048, DType::kBF16);
    check_gemv_chain(t, 2048, 2048, 64, DType::kF32);
    check_absorb_chain(t, 16, 2048);
  }
  for (int64_t t : {1, 8}) check_gemv_chain(t, 2048, 10944, 2048, DType::kBF16);
}

TEST_F(GemmCuda, Absorb16Heads) {
  for (int64_t t : {1, 7, 64, 300}) check_absorb(t, 16);
}

TEST_F(GemmCuda, Absorb128Heads) {
  for (int64_t t : {1, 7, 64}) check_absorb(t, 128);
}

// Every token count of the GEMV path (kT 1, 2, 4, 8 and the rows past T inside each) and the
// first one past it, at V2-Lite's 16 heads and V3's 128.
TEST_F(GemmCuda, AbsorbGemvDecodeBatches) {
  for (int64_t t : {1, 2, 3, 4, 5, 6, 8, 9}) check_absorb(t, 16);
  for (int64_t t : {1, 2, 3, 5, 8, 9}) check_absorb(t, 128, /*offset=*/t == 3 ? 2 : 0);
}

// The mma.sync kernel's token counts (mla_absorb_mma.cuh): its first, one and four m16 tiles, one
// row block and either side of it, two and three blocks, its last (256) and the first past it
// (257: cuBLASLt), at V2-Lite's 16 heads and V3's 128, with row views of q.
TEST_F(GemmCuda, AbsorbMmaDecodeBatches) {
  for (int64_t t : {9, 16, 63, 64, 65, 129, 200, 256, 257}) check_absorb(t, 16, /*offset=*/t == 65 ? 3 : 0);
  for (int64_t t : {9, 16, 63, 64, 65, 129, 200, 256, 257}) check_absorb(t, 128, /*offset=*/t == 129 ? 5 : 0);
}

// The decode step's chain at V2-Lite's shapes with the kernel's token counts: q by a cuBLASLt
// GEMM of x [T, 2048] just before the absorption (see SmallAbsorbMmaChain).
TEST_F(GemmCuda, AbsorbMmaChainDecodeShapes) {
  for (int64_t t : {16, 64, 200, 256}) check_absorb_chain(t, 16, 2048);
}

// ---- CUDA graph capture ----------------------------------------------------------------------

// Every GEMM-shaped op, run once eagerly (plans, workspace), then captured in global mode (which
// rejects allocation and synchronisation) and replayed twice (eager_then_graph): each replay must
// reproduce the eager results bit for bit. The MoE kernels are deterministic; cuBLASLt runs the
// cached algorithm.
TEST_F(GemmCuda, SmallGraphCaptureMatchesEager) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  constexpr int64_t kT = 6, kHeads = 2, kExperts = 4, kH = 256, kIm = 128;
  auto gpu = [&](const Shape& shape, DType dtype, uint64_t s) {
    Tensor t = Tensor::empty(shape, dtype, Device::kCUDA);
    fill_random(t, s, stream_);
    return t;
  };
  const Tensor x = gpu({kT, kH}, DType::kBF16, seed), w = gpu({384, kH}, DType::kBF16, seed + 1);
  const Tensor q = gpu({kT, kHeads, 192}, DType::kBF16, seed + 2), kv_b = gpu({kHeads * 256, 512}, DType::kBF16, seed + 3);
  const Tensor lat = gpu({kT, kHeads, 512}, DType::kBF16, seed + 4);
  ExpertWeights ew{gpu({kExperts, 2 * kIm, kH}, DType::kBF16, seed + 5), gpu({kExperts, kH, kIm}, DType::kBF16, seed + 6),
                   {}, {}};
  const Tensor offsets = testing::i32_tensor({0, 2, 2, 5, 6}, {kExperts + 1}).to(Device::kCUDA);
  Tensor y = poisoned_gpu({kT, 384}, DType::kF32, stream_), q_abs = poisoned_gpu({kT, kHeads, 576}, DType::kBF16, stream_);
  Tensor o = poisoned_gpu({kT, kHeads, 128}, DType::kBF16, stream_), hidden = poisoned_gpu({kT, kIm}, DType::kBF16, stream_);
  Tensor moe_out = poisoned_gpu({kT, kH}, DType::kBF16, stream_);
  auto step = [&] {
    linear_cuda(x, w, y, stream_);
    mla_absorb_query_cuda(q, kv_b, q_abs, stream_);
    mla_up_project_output_cuda(lat, kv_b, o, stream_);
    moe_experts_cuda(x, offsets, ew, hidden, moe_out, stream_);
  };
  const std::vector<Tensor> eager = eager_then_graph(step, {&y, &q_abs, &o, &moe_out});
  const char* names[] = {"linear", "absorb query", "up-project", "moe"};
  for (size_t i = 0; i < eager.size(); ++i) {
    EXPECT_EQ(count_nonfinite(eager[i]), 0) << names[i] << ": outputs left unwritten";
  }
}

}  // namespace
}  // namespace mlaserve::ops
