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
// The tensor-core GEMV on its own, and the MLP down on its gate_up rows, are in
// linear_fp8_gemv_mma_cuda_test.cc. Tolerances: fp8_linear_test_util.h, from the precision.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/cuda_check.h"
#include "fp8_linear_test_util.h"
#include "gemm_cuda_test_util.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/linear_fp8_gemv.h"
#include "ops/cuda/linear_fp8_heuristics.h"
#include "ops/cuda/linear_fp8_sm90.h"
#include "ops/fp8_block.h"
#include "ops/linear_fp8.h"

namespace mlaserve::ops {
namespace {

using testing::all_rows;
using testing::compare;
using testing::copy_rows;
using testing::count_bf16_values;
using testing::count_nonfinite;
using testing::expect_within_bounds;
using testing::Fp8Errors;
using testing::Fp8Weight;
using testing::fresh_seed;
using testing::poisoned_gpu;
using testing::random_fp8;
using testing::random_fp8_weight;
using testing::random_scales;
using testing::rows_to_check;

// Where Fp8GemmKernel::kCublasLt runs: whole, or on T & ~3 rows with a GEMV on the rest.
bool cublaslt_takes(int64_t m, int64_t n, int64_t k) {
  return sm90_fp8::cublaslt_fp8_fits(m, n, k) || sm90_fp8::cublaslt_split_fits(m, n, k);
}

class LinearFp8Cuda : public testing::Sm90StreamTest {
 protected:
  // One weight [n, k] against x of each row count in ms, through each kernel that takes the
  // shape (kAuto too). The GPU runs every case, then one CPU reference call covers the checked
  // rows of all of them: a sample (rows_to_check), or with every_row all of them.
  void check(int64_t n, int64_t k, const std::vector<int64_t>& ms, DType out_dtype = DType::kBF16,
             bool every_row = false) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + ", N " + std::to_string(n) + ", K " + std::to_string(k) + ", out " +
                 std::string(dtype_name(out_dtype)));
    const bool f32_out = out_dtype == DType::kF32;
    std::mt19937_64 rng(seed);
    const int64_t g = fp8_num_blocks(k);
    const Fp8Weight weight = random_fp8_weight(n, k, rng);  // [N, K] e4m3, [N/128, G] scales
    const Tensor &w_host = weight.w_host, &ws_host = weight.ws_host, &w = weight.w, &ws = weight.ws;

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
      const std::vector<int64_t> rows = every_row ? all_rows(m) : rows_to_check(m, rng);
      const auto checked = static_cast<int64_t>(rows.size());
      std::vector<Fp8GemmKernel> kernels = {Fp8GemmKernel::kAuto, Fp8GemmKernel::kSm90SwapAB};
      if (cublaslt_takes(m, n, k)) kernels.push_back(Fp8GemmKernel::kCublasLt);
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
      const std::vector<int64_t> all = all_rows(x_rows[i].dim(0));
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
    const Fp8Weight weight = random_fp8_weight(n, k, rng);  // [N, K] e4m3, [N/128, G] scales
    const Tensor &w_host = weight.w_host, &ws_host = weight.ws_host, &w = weight.w, &ws = weight.ws;
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
      if (cublaslt_takes(m, n, k)) kernels.push_back(Fp8GemmKernel::kCublasLt);
      for (const Fp8GemmKernel kernel : kernels) {
        const std::string what = "bf16 x M " + std::to_string(m) + " N " + std::to_string(n) + " K " +
                                 std::to_string(k) + " kernel " + std::to_string(static_cast<int>(kernel));
        Tensor out = poisoned_gpu({m, n}, out_dtype, stream_);
        linear_fp8_cuda(x, w, ws, act, out, stream_, kernel);
        sync();
        const Tensor out_host = out.to(Device::kCPU);
        EXPECT_EQ(count_nonfinite(out_host), 0) << what << ": outputs unwritten (poison) or not finite";
        const Fp8Errors e = compare(testing::gather_rows_f32(out_host, all_rows(m)), ref);
        expect_within_bounds(what, e, f32_out);
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

// T % 4 != 0 through cuBLASLt (its rows in fours, the last 1-3 through kAuto's small-T path), every
// row checked, forced at 5, 67 and 517 tokens, on quantised and on bf16 x, bf16 and f32 out. Where
// kAuto takes the split is LinearFp8Rule.OddTokenCountsSplitAroundCublasLt's (shapes too large to
// check every row here).
TEST_F(LinearFp8Cuda, SmallOddTokensSplitAroundCublasLt) {
  check(200, 512, {5, 67, 517}, DType::kBF16, true);
  check(256, 512, {517}, DType::kF32, true);
  check_bf16(200, 512, {7, 517}, ActQuantParams{});
}

// N = 160: a partial 128-row scale block and a partial 64-row tile; K = 272: a partial K group.
TEST_F(LinearFp8Cuda, SmallPartialBlocks) { check(160, 272, {1, 5, 33, 130}); }

TEST_F(LinearFp8Cuda, SmallSplitK) { check(256, 1024, {1, 8, 64}); }

// N = 1088: a 64-row half block at the end of a 128-row (two-warpgroup) tile.
TEST_F(LinearFp8Cuda, SmallTwoWarpgroups) { check(1088, 640, {3, 40, 128}); }

// Several token tiles with a partial last one, which the swap-AB kernel copies in a box of its rows
// below T (SwapAbParams::x_tail_map) over shared memory rows of stale codes. Every row is checked,
// every plan run (BN 64 at 65-127 tokens, BN 128 at 200; one and two warpgroups, splits).
TEST_F(LinearFp8Cuda, SmallPartialLastTokenTile) { check(640, 1024, {65, 100, 127, 200}, DType::kBF16, true); }

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
  Tensor x7 = Tensor::empty({7, 256}, DType::kF8E4M3, Device::kCUDA);  // cuBLASLt needs ceil(K/128) % 4 == 0
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
// A V3 TP8 rank's dense and shared down (K = 2304 and 256, which cuBLASLt refuses), f32 out: at 65-128
// tokens two token tiles of two warpgroups (two_tiles_take_two_wgs), the second tile partial at 96.
TEST_F(LinearFp8Cuda, V3Tp8DownsTwoTokenTilesF32Out) {
  for (const int64_t k : {2304, 256}) check(7168, k, {1, 64, 96, 128}, DType::kF32);
}
// V2-Lite's dense down at 96 tokens: two token tiles of two warpgroups in 3 splits, the second partial.
TEST_F(LinearFp8Cuda, V2LiteDenseDownTwoTokenTiles) { check(2048, 10944, {96}); }

}  // namespace
}  // namespace mlaserve::ops
