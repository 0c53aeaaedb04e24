// The tensor-core block-FP8 GEMV (kGemvMma, T <= 8, linear_fp8_gemv_mma.cuh) on its own, and an
// MLP's FP8 down projection on its gate_up rows (silu_mul_linear_fp8_cuda), against their CPU
// references on fresh random operands. The GEMV at T = 1 .. 8 on every dense projection of V3 and
// of V2-Lite quantised to FP8, both activation kinds (bf16 x quantised inside, against
// linear_fp8_cpu; e4m3 codes + scales, against linear_fp8_w8a8_cpu), every launch shape of
// kFp8GemvMmaConfigs on the small cases, and in a chain of programmatic launches replayed from a
// CUDA graph. The SwiGLU down against linear_fp8_w8a8_cpu on its quantised SwiGLU at the MLPs' down shapes, its
// one-launch form also bit for bit against its two passes. Outputs are poisoned (NaN) first and
// must be fully written. Tolerances: fp8_linear_test_util.h, from the precision.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda_check.h"
#include "fp8_linear_test_util.h"
#include "gemm_cuda_test_util.h"
#include "ops/cuda/linear_fp8_gemv.h"
#include "ops/fp8_block.h"
#include "ops/fp8_quant.h"
#include "ops/linear_fp8.h"

namespace mlaserve::ops {
namespace {

using testing::compare;
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

class LinearFp8GemvMmaCuda : public testing::Sm90StreamTest {
 protected:
  // out (GPU, [T, N], poisoned before the call) against ref ([T, N] f32, host): fully written,
  // within the bounds of the precision (the note at the top).
  void expect_close(const std::string& what, const Tensor& out, const Tensor& ref) {
    const bool f32_out = out.dtype() == DType::kF32;
    const Tensor out_host = out.to(Device::kCPU);
    EXPECT_EQ(count_nonfinite(out_host), 0) << what << ": outputs unwritten (poison) or not finite";
    if (f32_out && out_host.numel() >= 64) {
      EXPECT_LT(count_bf16_values(out_host), out_host.numel() / 4) << what << ": f32 out rounded to bf16";
    }
    const Fp8Errors e = compare(testing::gather_rows_f32(out_host, testing::all_rows(out.dim(0))), ref);
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
    const Fp8Weight weight = random_fp8_weight(n, k, rng);  // [N, K] e4m3, [N/128, G] scales
    const Tensor &w_host = weight.w_host, &ws_host = weight.ws_host, &w = weight.w, &ws = weight.ws;
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
  // rows), through kAuto, the one-launch form (kGemvMma, where it fits) and the two-pass form on
  // another kernel (kSm90SwapAB). The one-launch form must give the bits of the two-pass form on
  // the same GEMV (silu_mul_quantize_fp8_cuda, then the tensor-core GEMV on its codes), with each
  // of `configs` too: the same codes, scales and sums. The reference is linear_fp8_w8a8_cpu on the
  // codes and scales of silu_mul_quantize_fp8_cuda, which fp8_quant_cuda_test.cc checks against
  // silu_mul_cpu + quantize_activations_fp8_cpu: there std::exp and the device expf may round a
  // code one e4m3 step apart (~6% of that element) on a rounding boundary, and one such step in a
  // large code moves each output of its row by up to ~1% of the row's RMS, past the bounds here (37 of 2,048
  // outputs, N 256 K 1024, seed 16068132472664566005 on an H100).
  void check_swiglu_down(int64_t n, int64_t k, const std::vector<int64_t>& ts, const ActQuantParams& act,
                         DType out_dtype = DType::kBF16, const std::vector<gpu::GemvMmaConfig>& configs = {}) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + ", SwiGLU down, N " + std::to_string(n) + ", K " +
                 std::to_string(k) + ", out " + std::string(dtype_name(out_dtype)) +
                 (act.scale_format == Fp8ScaleFormat::kUE8M0 ? ", UE8M0 scales" : ""));
    std::mt19937_64 rng(seed);
    constexpr int64_t kRows = 8;
    const int64_t g = fp8_num_blocks(k);
    const Fp8Weight weight = random_fp8_weight(n, k, rng);  // [N, K] e4m3, [N/128, G] scales
    const Tensor &w_host = weight.w_host, &ws_host = weight.ws_host, &w = weight.w, &ws = weight.ws;
    Tensor gate_up_f32 = testing::random_host({kRows, 2 * k}, DType::kF32, rng());  // [8, 2K]
    float* v = gate_up_f32.data<float>();
    for (int64_t r = 0; r < kRows; ++r) {
      for (int64_t c = 0; c < 2 * k; ++c) {
        float& x = v[r * 2 * k + c];
        x = c < k ? 4.0f * round_bf16(x) : round_bf16((c - k) / 128 % 5 == 3 ? x * 0x1p-12f : x);
      }
    }
    const Tensor gate_up = gate_up_f32.to_dtype(DType::kBF16).to(Device::kCUDA);
    Fp8Activations h_all{Tensor::empty({kRows, k}, DType::kF8E4M3, Device::kCUDA),
                         Tensor::empty({kRows, g}, DType::kF32, Device::kCUDA), Tensor()};  // [8, K], [8, G]
    silu_mul_quantize_fp8_cuda(gate_up, act, h_all, stream_);
    sync();
    Tensor ref = Tensor::empty({kRows, n}, DType::kF32);
    linear_fp8_w8a8_cpu(h_all.x_q.to(Device::kCPU), h_all.scales.to(Device::kCPU), w_host, ws_host, ref);

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
TEST_F(LinearFp8GemvMmaCuda, SmallGemvMma) {
  check_gemv_mma(160, 272, kAllDecodeTokens, ActQuantParams{}, DType::kBF16, gemv_mma_configs());
  check_gemv_mma(40, 48, kAllDecodeTokens, ActQuantParams{}, DType::kBF16, gemv_mma_configs());
  check_gemv_mma(256, 1024, kAllDecodeTokens, ActQuantParams{}, DType::kBF16, gemv_mma_configs());
  check_gemv_mma(160, 272, {1, 5, 8}, ActQuantParams{kFp8AmaxFloor, Fp8ScaleFormat::kUE8M0});
  check_gemv_mma(1088, 640, kAllDecodeTokens, ActQuantParams{}, DType::kF32, gemv_mma_configs());
}

// silu_mul_linear_fp8_cuda, small: N = 160 (a partial row block), K = 272 (a partial K group), and
// K = 1024; both scale formats; f32 out; every launch shape of the one-launch form.
TEST_F(LinearFp8GemvMmaCuda, SmallSwiGluDown) {
  check_swiglu_down(160, 272, kAllDecodeTokens, ActQuantParams{}, DType::kBF16, gemv_mma_configs());
  check_swiglu_down(256, 1024, {1, 2, 8}, ActQuantParams{}, DType::kBF16, gemv_mma_configs());
  check_swiglu_down(160, 272, {1, 3}, ActQuantParams{kFp8AmaxFloor, Fp8ScaleFormat::kUE8M0});
  check_swiglu_down(1088, 640, {1, 2, 5}, ActQuantParams{}, DType::kF32, gemv_mma_configs());
}

// T outside 1 .. 8 or K not a multiple of 16 is refused, and so is a bad launch shape.
TEST_F(LinearFp8GemvMmaCuda, SmallGemvMmaRefusesWhatItCannotRun) {
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
TEST_F(LinearFp8GemvMmaCuda, SmallGemvMmaDeterministicPdlChainAndGraph) {
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
TEST_F(LinearFp8GemvMmaCuda, V2LiteGemvMma) {
  for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{
           {3072, 2048}, {576, 2048}, {512, 2048}, {64, 2048}, {4096, 512}, {2048, 2048}, {10944, 2048},
           {21888, 2048}, {2048, 10944}, {2816, 2048}, {5632, 2048}, {2048, 2816}}) {
    check_gemv_mma(n, k, kAllDecodeTokens, ActQuantParams{});
  }
}

// V2-Lite's all-reduced projections at TP 2 with f32 out (o_proj, dense down: K = 5472 ends in a
// 96-channel group, shared down).
TEST_F(LinearFp8GemvMmaCuda, V2LiteGemvMmaTp2F32Out) {
  for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{{2048, 1024}, {2048, 5472}, {2048, 1408}}) {
    check_gemv_mma(n, k, kAllDecodeTokens, ActQuantParams{}, DType::kF32);
  }
}

// V3 / R1: q_a_proj, kv_a_proj, the fused qkv_a, q_b_proj, kv_b_proj, o_proj, the dense gate or
// up and down, the shared expert's gate or up and down.
TEST_F(LinearFp8GemvMmaCuda, V3GemvMma) {
  for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{
           {1536, 7168}, {576, 7168}, {2112, 7168}, {24576, 1536}, {32768, 512}, {7168, 16384}, {18432, 7168},
           {7168, 18432}, {2048, 7168}, {7168, 2048}}) {
    check_gemv_mma(n, k, kAllDecodeTokens, ActQuantParams{});
  }
}

TEST_F(LinearFp8GemvMmaCuda, V3GemvMmaTp2F32Out) {
  for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{{7168, 8192}, {7168, 9216}, {7168, 1024}}) {
    check_gemv_mma(n, k, kAllDecodeTokens, ActQuantParams{}, DType::kF32);
  }
}

// The down projections of DeepSeek's MLPs on their gate_up rows at decode sizes: V2-Lite's dense
// (K = 10944, a half group) and shared experts', V3's dense and shared expert's, and the shared
// ones of a tensor-parallel rank (V2-Lite TP 2, V3 TP 8) with f32 out.
TEST_F(LinearFp8GemvMmaCuda, SwiGluDownDeepSeekShapes) {
  for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{{2048, 10944}, {2048, 2816}, {7168, 18432},
                                                                      {7168, 2048}}) {
    check_swiglu_down(n, k, {1, 2, 4, 8}, ActQuantParams{});
  }
  check_swiglu_down(2048, 1408, {1, 2}, ActQuantParams{}, DType::kF32);
  check_swiglu_down(7168, 256, {1, 2, 8}, ActQuantParams{}, DType::kF32);
}

}  // namespace
}  // namespace mlaserve::ops
