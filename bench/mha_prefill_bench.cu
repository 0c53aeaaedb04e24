// Benchmark of mha_attention_cuda (sm_90a), MLA prefill attention in the MHA form (qk dim 192,
// v dim 128), beside a cuBLASLt BF16 GEMM measured in the same run. A program, not a test: it
// prints a table and writes JSON.
//
//   mha_prefill_bench [--out DIR] [--reps N] [--shapes KEY,KEY...] [--bf16-only]
//
// Each shape also runs as an FP8 o_proj reads it, output quantised per (token, head): by a
// quantiser pass after the kernel ("+ pass us": quantize_activations_fp8_cuda over the bf16 out) and
// in the kernel's epilogue ("fused us": AttentionFp8Output), graph times as below; --bf16-only
// leaves those two columns out. (--fp8-out, which older commands in the notes pass, is the default.)
//
// Per shape: random bf16 q, k, v (never zeros) and as many input sets as it takes to pass 128 MB
// (about 2.5x the H100's 50 MB L2), used in rotation. The figure ("graph us") is GPU time: a CUDA
// graph of 10 calls over the rotating sets is replayed, each replay timed with events, and the
// median over replays is divided by 10. The median of single eager calls timed with events is
// reported too; it adds the host's work per call (3 tensor maps, the launch) where the GPU is
// faster than the host, as at 1k tokens.
//
// FLOPs: causal 2 * n * (Tq * Tk / 2) * (192 + 128) (as the target counts them: the mask halves
// the square), non-causal 2 * n * Tq * Tk * 320. The ceiling is the dense BF16 GEMM rate of
// cuBLASLt (TN, fp32 accumulation, bf16 out) at 4096^3 and 8192^3 on random data; "x GEMM" is the
// attention rate over the better of the two. Target (issue): >= 0.6 at 4k causal, 16 and 128 heads.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_main.h"
#include "bench_report.h"
#include "bench_timing.h"
#include "core/cuda_check.h"
#include "core/tensor.h"
#include "ops/fp8_quant.h"
#include "ops/mha_attention.h"

namespace mlaserve::bench {
namespace {

constexpr int64_t kDqk = 192;
constexpr int64_t kDv = 128;

struct Shape {
  int64_t tq;
  int64_t tk;
  int64_t n_heads;
  bool causal;
  std::string key() const {
    return "q" + std::to_string(tq) + "_k" + std::to_string(tk) + "_h" + std::to_string(n_heads) +
           (causal ? "_causal" : "_full");
  }
  double flops() const {
    const double pairs = causal ? tq * static_cast<double>(tk) / 2.0 : tq * static_cast<double>(tk);
    return 2.0 * n_heads * pairs * (kDqk + kDv);
  }
};

// 4k causal at 16 and 128 heads is the target; 1k and 16k show the ends; the non-causal 4k x 4k
// is a chunk of cached context in chunked prefill.
const std::vector<Shape> kShapes = {
    {4096, 4096, 16, true},   {4096, 4096, 128, true},   {1024, 1024, 16, true}, {1024, 1024, 128, true},
    {16384, 16384, 16, true}, {16384, 16384, 128, true}, {4096, 4096, 128, false},
};

// Uniform(-1, 1) bf16, never exactly zero.
__global__ void fill_random_bf16(__nv_bfloat16* p, int64_t n, uint64_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint64_t x = (static_cast<uint64_t>(i) + seed) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    const float u = static_cast<float>(x >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    p[i] = __float2bfloat16(2.0f * u - 1.0f + 1e-3f);
  }
}

void fill(Tensor& t, uint64_t seed) {
  fill_random_bf16<<<1024, 256>>>(static_cast<__nv_bfloat16*>(t.raw()), t.numel(), seed);
  MLA_CUDA_CHECK_LAUNCH();
}


// cuBLASLt BF16 GEMM D[m, n] = A[m, k] B[n, k]^T (row-major; "TN" in cuBLAS's column-major
// terms), fp32 accumulation, the heuristic's first algorithm, 64 MB of workspace: TFLOPS.
double gemm_tflops(int64_t m, int64_t n, int64_t k, cudaStream_t stream, Timer& timer) {
  Tensor a = Tensor::empty({m, k}, DType::kBF16, Device::kCUDA);
  Tensor b = Tensor::empty({n, k}, DType::kBF16, Device::kCUDA);
  Tensor d = Tensor::empty({n, m}, DType::kBF16, Device::kCUDA);
  const size_t workspace_bytes = size_t{64} << 20;
  Tensor workspace = Tensor::empty({static_cast<int64_t>(workspace_bytes)}, DType::kU8, Device::kCUDA);
  fill(a, 11);
  fill(b, 12);

  cublasLtHandle_t lt;
  MLA_CUBLAS_CHECK(cublasLtCreate(&lt));
  cublasLtMatmulDesc_t desc;
  MLA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  MLA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
  MLA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)));
  cublasLtMatrixLayout_t la, lb, ld;
  MLA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, k, m, k));
  MLA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, k, n, k));
  MLA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, m, n, m));
  cublasLtMatmulPreference_t pref;
  MLA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  MLA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                        &workspace_bytes, sizeof(workspace_bytes)));
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  MLA_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 1, &heuristic, &found));
  MLA_CHECK(found > 0, "cuBLASLt has no BF16 algorithm for {}x{}x{}", m, n, k);

  const float alpha = 1.0f, beta = 0.0f;
  auto run = [&](int) {
    MLA_CUBLAS_CHECK(cublasLtMatmul(lt, desc, &alpha, a.raw(), la, b.raw(), lb, &beta, d.raw(), ld, d.raw(), ld,
                                    &heuristic.algo, workspace.raw(), workspace_bytes, stream));
  };
  timer.median_us(stream, 5, run);
  const double us = timer.median_us(stream, 20, run);

  MLA_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
  MLA_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(la));
  MLA_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lb));
  MLA_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(ld));
  MLA_CUBLAS_CHECK(cublasLtMatmulDescDestroy(desc));
  MLA_CUBLAS_CHECK(cublasLtDestroy(lt));
  return 2.0 * m * n * k / us / 1e6;
}

// How a run writes its output: bf16 only; then quantised by a pass of its own; quantised in the
// kernel.
enum class OutMode { kBf16, kQuantizerPass, kFused };

struct Result {
  Shape shape;
  double graph_us;
  double eager_us;
  int64_t input_sets;
};

Result run_shape(const Shape& s, int reps, cudaStream_t stream, Timer& timer, OutMode mode) {
  const double set_bytes = (s.tq * s.n_heads * kDqk + s.tk * s.n_heads * (kDqk + kDv)) * 2.0;
  const int64_t sets = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(128e6 / set_bytes)));
  struct Set {
    Tensor q, k, v;
    ops::AttentionState out;
    ops::AttentionFp8Output out_q;
  };
  std::vector<Set> in(static_cast<size_t>(sets));
  for (int64_t i = 0; i < sets; ++i) {
    in[i].q = Tensor::empty({s.tq, s.n_heads, kDqk}, DType::kBF16, Device::kCUDA);
    in[i].k = Tensor::empty({s.tk, s.n_heads, kDqk}, DType::kBF16, Device::kCUDA);
    in[i].v = Tensor::empty({s.tk, s.n_heads, kDv}, DType::kBF16, Device::kCUDA);
    fill(in[i].q, 1000 * i + 1);
    fill(in[i].k, 1000 * i + 2);
    fill(in[i].v, 1000 * i + 3);
    in[i].out.out = Tensor::empty({s.tq, s.n_heads, kDv}, DType::kBF16, Device::kCUDA);
    in[i].out.lse = Tensor::empty({s.tq, s.n_heads}, DType::kF32, Device::kCUDA);
    in[i].out.lse.fill_bytes(0xFF);
    if (mode != OutMode::kBf16) {
      in[i].out_q.q.x_q = Tensor::empty({s.tq, s.n_heads * kDv}, DType::kF8E4M3, Device::kCUDA);
      in[i].out_q.q.scales = Tensor::empty({s.tq, s.n_heads}, DType::kF32, Device::kCUDA);
    }
  }
  MLA_CUDA_CHECK(cudaDeviceSynchronize());

  const ops::MhaParams params{0.1352338f, s.causal};  // V3's softmax scale
  auto call = [&](int i) {
    Set& x = in[static_cast<size_t>(i % sets)];
    ops::mha_attention_cuda(x.q, x.k, x.v, params, x.out, mode == OutMode::kFused ? x.out_q : ops::AttentionFp8Output{},
                            stream);
    if (mode == OutMode::kQuantizerPass) {
      ops::quantize_activations_fp8_cuda(x.out.out.reshape({s.tq, s.n_heads * kDv}), x.out_q.params, x.out_q.q.x_q,
                                         x.out_q.q.scales, stream);
    }
  };
  for (int i = 0; i < 3; ++i) call(i);
  // About 0.2 s of calls per shape at 500 TFLOPS: the 16k shapes take tens of ms a call.
  const int shape_reps = std::max(5, std::min(reps, static_cast<int>(1e14 / s.flops())));
  const double eager_us = timer.median_us(stream, shape_reps, call);

  constexpr int kCallsPerGraph = 10;
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  MLA_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < kCallsPerGraph; ++i) call(i);
  MLA_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  MLA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  auto replay = [&](int) { MLA_CUDA_CHECK(cudaGraphLaunch(exec, stream)); };
  replay(0);
  const double graph_us = timer.median_us(stream, std::max(3, shape_reps / kCallsPerGraph), replay) / kCallsPerGraph;
  MLA_CUDA_CHECK(cudaGraphExecDestroy(exec));
  MLA_CUDA_CHECK(cudaGraphDestroy(graph));

  // Every lse written and finite (outputs were poisoned): a broken run must not report a time.
  for (int64_t i = 0; i < sets; ++i) {
    const std::vector<float> lse = in[i].out.lse.to(Device::kCPU).to_vector();
    for (float v : lse) MLA_CHECK(std::isfinite(v), "shape {}: non-finite lse {} in set {}", s.key(), v, i);
  }
  return {s, graph_us, eager_us, sets};
}

int run(int argc, char** argv) {
  std::string out_dir = "bench/results", only;
  int reps = 50;
  bool fp8_out = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) {
      out_dir = argv[++i];
    } else if (a == "--shapes" && i + 1 < argc) {
      only = std::string(",") + argv[++i] + ",";
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::max(5, std::atoi(argv[++i]));
    } else if (a == "--bf16-only" || a == "--fp8-out") {
      fp8_out = a == "--fp8-out";
    } else {
      std::fprintf(stderr, "usage: %s [--out DIR] [--reps N] [--shapes KEY,KEY...] [--bf16-only]\n", argv[0]);
      return 2;
    }
  }

  cudaDeviceProp prop{};
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  Timer timer;
  const double gemm_4k = gemm_tflops(4096, 4096, 4096, stream, timer);
  const double gemm_8k = gemm_tflops(8192, 8192, 8192, stream, timer);
  const double gemm_best = std::max(gemm_4k, gemm_8k);
  std::printf("card: %s, %d SMs, L2 %d MB; cuBLASLt BF16 GEMM %.0f TFLOPS (4096^3), %.0f TFLOPS (8192^3)\n",
              prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, gemm_4k, gemm_8k);

  std::vector<Result> results, with_pass, fused;
  for (const Shape& s : kShapes) {
    if (only.empty() || only.find("," + s.key() + ",") != std::string::npos) {
      results.push_back(run_shape(s, reps, stream, timer, OutMode::kBf16));
      if (!fp8_out) continue;
      with_pass.push_back(run_shape(s, reps, stream, timer, OutMode::kQuantizerPass));
      fused.push_back(run_shape(s, reps, stream, timer, OutMode::kFused));
    }
  }

  std::printf("\n%-26s %10s %10s %8s %8s %5s%s\n", "shape", "graph us", "eager us", "TFLOPS", "x GEMM", "sets",
              fp8_out ? "  + pass us  fused us" : "");
  nlohmann::json rows = nlohmann::json::array();
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    const double tflops = r.shape.flops() / r.graph_us / 1e6;
    std::printf("%-26s %10.1f %10.1f %8.1f %8.2f %5lld", r.shape.key().c_str(), r.graph_us, r.eager_us, tflops,
                tflops / gemm_best, static_cast<long long>(r.input_sets));
    if (fp8_out) std::printf(" %10.1f %9.1f", with_pass[i].graph_us, fused[i].graph_us);
    std::printf("\n");
    nlohmann::json row = {{"shape", r.shape.key()},
                    {"tq", r.shape.tq},
                    {"tk", r.shape.tk},
                    {"n_heads", r.shape.n_heads},
                    {"causal", r.shape.causal},
                    {"graph_us", r.graph_us},
                    {"eager_us", r.eager_us},
                    {"flops", r.shape.flops()},
                    {"tflops", tflops},
                    {"ratio_to_gemm", tflops / gemm_best},
                    {"input_sets", r.input_sets}};
    if (fp8_out) {
      row["fp8_out_quantizer_pass_graph_us"] = with_pass[i].graph_us;
      row["fp8_out_fused_graph_us"] = fused[i].graph_us;
    }
    rows.push_back(row);
  }

  write_report(out_dir, "mha_prefill", prop.name, command_line(argc, argv),
               {{"card", prop.name},
                {"sms", prop.multiProcessorCount},
                {"gemm_tflops_4096", gemm_4k},
                {"gemm_tflops_8192", gemm_8k},
                {"results", rows}});
  MLA_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}

}  // namespace
}  // namespace mlaserve::bench

int main(int argc, char** argv) {
  return mlaserve::bench::run_program("mha_prefill_bench", mlaserve::bench::run, argc, argv);
}
