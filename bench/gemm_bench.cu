// Benchmark of the GEMM-shaped ops at DeepSeek's shapes, beside the floors measured in the same
// run. A program, not a test: it prints tables and writes JSON.
//
//   gemm_bench [--out DIR] [--moe-only]
//
// linear: linear_cuda (cuBLASLt, cached plan) and plain cuBLAS (cublasGemmEx, default algo) on
//   the same operands, y [M, N] = x [M, K] · W [N, K]ᵀ for kv_a_proj (576 x 7168), q_b_proj
//   (24576 x 1536), o_proj (7168 x 16384), lm_head (102400 x 2048, f32 logits) and V3's router
//   (256 x 7168, f32), M = 1, 64, 512, 4096. Bytes: W + x + y once; the floor is bytes over the
//   copy bandwidth, next to the TFLOPS.
// moe decode: moe_experts_cuda for V2-Lite (64 experts, H 2048, Im 1408, k 6) and V3 (256, 7168,
//   2048, 8) at 1 .. 256 tokens, each token routed to k distinct experts drawn uniformly. The
//   figure is GB/s of the active experts' weights (each read once is the floor), against the
//   copy bandwidth.
// moe prefill: 1024, 2048 and 4096 tokens of both (the kernel column: which grouped GEMM the
//   heuristic picks, "wgmma" = moe_grouped_gemm_sm90, "mma.sync" = the sm80 tiles); TFLOPS against a dense cuBLASLt pair of the same
//   FLOPs ([P, H] · [2Im, H]ᵀ then [P, Im] · [H, Im]ᵀ through linear_cuda). The floor is the
//   larger of that dense time and the bytes over the copy bandwidth: with 256 experts a
//   1024-token step still reads all 22.5 GB of V3's expert weights.
//
// Timing: inputs random (never zeros); as many weight copies (linear) or routings (MoE) as it
// takes to pass 128 MB of weights, about 2.5x the H100's L2, used in rotation; a CUDA graph of
// the calls is replayed, each replay timed with events; the median replay over the calls is the
// figure. The copy bandwidth is cudaMemcpyAsync of 1 GiB, bytes read + written, timed eagerly
// (a memcpy node in a graph ran at 2.4 TB/s on the H100, eager at 3.0); read-mostly kernels can
// pass it (the expert weights streamed at 3.07 TB/s on the same card).
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench_main.h"
#include "bench_report.h"
#include "bench_timing.h"
#include "copy_bandwidth.h"
#include "core/cuda_check.h"
#include "core/tensor.h"
#include "ops/linear.h"
#include "ops/cuda/moe_grouped_gemm_sm80_heuristics.h"
#include "ops/moe_experts.h"
#include "ops/random_fill.h"

namespace mlaserve::bench {
namespace {

constexpr double kRotateBytes = 128e6;

void fill(Tensor& t, uint64_t seed, cudaStream_t stream) { ops::fill_uniform_cuda({seed, 1.0f, 0.0f}, t, stream); }


int replays_for(double expected_us) { return expected_us > 2000 ? 5 : 15; }

// ---- linear --------------------------------------------------------------------------------

struct LinearShape {
  const char* name;
  int64_t n, k;
  DType out;
};

const std::vector<LinearShape> kLinearShapes = {{"kv_a_proj", 576, 7168, DType::kBF16},
                                                {"q_b_proj", 24576, 1536, DType::kBF16},
                                                {"o_proj", 7168, 16384, DType::kBF16},
                                                {"lm_head", 102400, 2048, DType::kF32},
                                                {"router_v3", 256, 7168, DType::kF32}};
const std::vector<int64_t> kLinearM = {1, 64, 512, 4096};

struct LinearResult {
  std::string name;
  int64_t m, n, k;
  double lt_us, cublas_us, bytes, flops, floor_us;
};

LinearResult run_linear(const LinearShape& s, int64_t m, double copy_gbps, cublasHandle_t cublas, cudaStream_t stream,
                        Timer& timer) {
  const double w_bytes = 2.0 * s.n * s.k;
  const int copies = static_cast<int>(std::max(1.0, std::ceil(kRotateBytes / w_bytes)));
  std::vector<Tensor> w, x, y;
  for (int i = 0; i < copies; ++i) {
    w.push_back(Tensor::empty({s.n, s.k}, DType::kBF16, Device::kCUDA));  // [N, K]
    fill(w.back(), 100 + i, stream);
  }
  for (int i = 0; i < 2; ++i) {
    x.push_back(Tensor::empty({m, s.k}, DType::kBF16, Device::kCUDA));  // [M, K]
    fill(x.back(), 200 + i, stream);
    y.push_back(Tensor::empty({m, s.n}, s.out, Device::kCUDA));  // [M, N]
  }
  const double flops = 2.0 * m * s.n * s.k;
  const double bytes = w_bytes + 2.0 * m * s.k + static_cast<double>(dtype_size(s.out)) * m * s.n;
  const int calls = 10, replays = replays_for(flops / 500e6);
  auto lt = [&](int i) { ops::linear_cuda(x[i % 2], w[i % copies], y[i % 2], stream); };
  auto plain = [&](int i) {
    const float alpha = 1.0f, beta = 0.0f;
    MLA_CUBLAS_CHECK(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(s.n), static_cast<int>(m),
                                  static_cast<int>(s.k), &alpha, w[i % copies].raw(), CUDA_R_16BF,
                                  static_cast<int>(s.k), x[i % 2].raw(), CUDA_R_16BF, static_cast<int>(s.k), &beta,
                                  y[i % 2].raw(), s.out == DType::kF32 ? CUDA_R_32F : CUDA_R_16BF,
                                  static_cast<int>(s.n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  };
  const double lt_us = timer.graph_us(stream, calls, replays, lt);
  const double cublas_us = timer.graph_us(stream, calls, replays, plain);
  return {s.name, m, s.n, s.k, lt_us, cublas_us, bytes, flops, bytes / copy_gbps / 1e3};
}

// ---- MoE -----------------------------------------------------------------------------------

struct MoeShape {
  const char* name;
  int64_t experts, hidden, inter, top_k;
};

const MoeShape kV2Lite{"v2_lite", 64, 2048, 1408, 6};
const MoeShape kV3{"v3", 256, 7168, 2048, 8};

// Row counts per expert of `tokens` tokens, each routed to top_k distinct uniform experts.
std::vector<int32_t> uniform_routing(const MoeShape& s, int64_t tokens, std::mt19937_64& rng) {
  std::vector<int32_t> counts(static_cast<size_t>(s.experts), 0);
  std::vector<int64_t> ids(static_cast<size_t>(s.experts));
  for (int64_t e = 0; e < s.experts; ++e) ids[e] = e;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < s.top_k; ++j) {  // partial Fisher-Yates: k distinct experts
      std::swap(ids[j], ids[std::uniform_int_distribution<int64_t>(j, s.experts - 1)(rng)]);
      counts[ids[j]] += 1;
    }
  }
  return counts;
}

struct MoeResult {
  std::string name;
  int64_t tokens, rows, active_experts;
  double us, weight_bytes, bytes, flops, floor_us, dense_us;
  std::string kernel;  // the grouped GEMM moe_experts_cuda chose (moe_grouped_gemm_sm80_heuristics.h)
};

std::string moe_kernel_name(const MoeShape& s, int64_t rows) {
  switch (ops::sm80::choose_moe_tiles(rows, s.experts, s.hidden)) {
    case ops::sm80::MoeTileConfig::kDecode: return "mma.sync16";
    case ops::sm80::MoeTileConfig::kMid: return "mma.sync64";
    case ops::sm80::MoeTileConfig::kPrefillWgmma: return "wgmma";
  }
  return "?";
}

MoeResult run_moe(const MoeShape& s, const ops::ExpertWeights& w, int64_t tokens, bool dense_baseline,
                  double copy_gbps, cudaStream_t stream, Timer& timer) {
  std::mt19937_64 rng(static_cast<uint64_t>(tokens) * 7919 + static_cast<uint64_t>(s.experts));
  const int64_t rows = tokens * s.top_k;
  const double expert_bytes = 2.0 * 3 * s.hidden * s.inter;
  std::vector<Tensor> offsets;
  double active_sum = 0.0;
  int sets = 0;
  for (double rotated = 0.0; sets < 8 && (sets == 0 || rotated < kRotateBytes); ++sets) {
    const std::vector<int32_t> counts = uniform_routing(s, tokens, rng);
    Tensor off = Tensor::empty({s.experts + 1}, DType::kI32);
    int32_t* o = off.data<int32_t>();
    o[0] = 0;
    int64_t active = 0;
    for (int64_t e = 0; e < s.experts; ++e) {
      o[e + 1] = o[e] + counts[e];
      active += counts[e] > 0 ? 1 : 0;
    }
    offsets.push_back(off.to(Device::kCUDA));
    active_sum += static_cast<double>(active);
    rotated += static_cast<double>(active) * expert_bytes;
  }
  Tensor x = Tensor::empty({rows, s.hidden}, DType::kBF16, Device::kCUDA);  // [P, H]
  fill(x, 300, stream);
  Tensor hidden = Tensor::empty({rows, s.inter}, DType::kBF16, Device::kCUDA);  // [P, Im]
  Tensor out = Tensor::empty({rows, s.hidden}, DType::kBF16, Device::kCUDA);    // [P, H]
  MLA_CUDA_CHECK(cudaMemsetAsync(out.raw(), 0xFF, out.nbytes(), stream));  // NaN until written

  const double active = active_sum / sets;
  const double weight_bytes = active * expert_bytes;
  const double bytes = weight_bytes + 2.0 * rows * (2.0 * s.hidden + 2.0 * s.inter);
  const double flops = 2.0 * rows * 3.0 * s.hidden * s.inter;
  const int replays = replays_for(flops / 300e6);
  const double us = timer.graph_us(stream, sets, replays, [&](int i) {
    ops::moe_experts_cuda(x, offsets[i % sets], w, hidden, out, stream);
  });
  MLA_CUDA_CHECK(cudaStreamSynchronize(stream));
  const std::vector<float> check = out.slice(0, 1).to(Device::kCPU).to_vector();
  for (float v : check) MLA_CHECK(std::isfinite(v), "{} at {} tokens: non-finite output {}", s.name, tokens, v);

  double dense_us = 0.0;
  if (dense_baseline) {  // the same FLOPs as two dense GEMMs over every row
    Tensor w1 = Tensor::empty({2 * s.inter, s.hidden}, DType::kBF16, Device::kCUDA);
    Tensor w2 = Tensor::empty({s.hidden, s.inter}, DType::kBF16, Device::kCUDA);
    fill(w1, 400, stream);
    fill(w2, 401, stream);
    Tensor y1 = Tensor::empty({rows, 2 * s.inter}, DType::kBF16, Device::kCUDA);
    dense_us = timer.graph_us(stream, 4, replays, [&](int) {
      ops::linear_cuda(x, w1, y1, stream);
      ops::linear_cuda(hidden, w2, out, stream);
    });
  }
  return {s.name, tokens, rows, static_cast<int64_t>(std::lround(active)), us, weight_bytes, bytes, flops,
          bytes / copy_gbps / 1e3, dense_us, moe_kernel_name(s, rows)};
}

ops::ExpertWeights make_experts(const MoeShape& s, cudaStream_t stream) {
  ops::ExpertWeights w{Tensor::empty({s.experts, 2 * s.inter, s.hidden}, DType::kBF16, Device::kCUDA),
                       Tensor::empty({s.experts, s.hidden, s.inter}, DType::kBF16, Device::kCUDA), {}, {}};
  fill(w.gate_up, 500, stream);
  fill(w.down, 501, stream);
  return w;
}

int run(int argc, char** argv) {
  std::string out_dir = "bench/results";
  bool moe_only = false;  // skip the linear shapes
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) {
      out_dir = argv[++i];
    } else if (a == "--moe-only") {
      moe_only = true;
    } else {
      std::fprintf(stderr, "usage: %s [--out DIR] [--moe-only]\n", argv[0]);
      return 2;
    }
  }
  cudaDeviceProp prop{};
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cublasHandle_t cublas;
  MLA_CUBLAS_CHECK(cublasCreate(&cublas));
  MLA_CUBLAS_CHECK(cublasSetStream(cublas, stream));
  Tensor cublas_ws = Tensor::empty({int64_t{32} << 20}, DType::kU8, Device::kCUDA);  // capture-safe workspace
  MLA_CUBLAS_CHECK(cublasSetWorkspace(cublas, cublas_ws.raw(), cublas_ws.nbytes()));
  Timer timer;
  // The floors use the memcpy rate; the 16-byte copy kernel's is printed and recorded beside it.
  const double copy = memcpy_gbps(stream), copy_kernel = copy_kernel_gbps(stream);

  std::vector<LinearResult> linear;
  for (const LinearShape& s : kLinearShapes) {
    if (moe_only) break;
    for (int64_t m : kLinearM) linear.push_back(run_linear(s, m, copy, cublas, stream, timer));
  }
  std::vector<MoeResult> decode, prefill;
  for (const MoeShape* s : {&kV2Lite, &kV3}) {
    const ops::ExpertWeights w = make_experts(*s, stream);
    for (int64_t t : {1, 4, 16, 64, 128, 256}) decode.push_back(run_moe(*s, w, t, false, copy, stream, timer));
    for (int64_t t : {1024, 2048, 4096}) prefill.push_back(run_moe(*s, w, t, true, copy, stream, timer));
  }

  std::printf("card: %s, %d SMs, L2 %d MB; copy %.0f GB/s (memcpy), %.0f GB/s (16-byte kernel), read + write; "
              "floors use memcpy\n",
              prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, copy, copy_kernel);
  std::printf("\nlinear y[M,N] = x[M,K] W[N,K]^T, bf16 in, fp32 accumulate (graph replays)\n");
  std::printf("%-10s %5s %7s %6s %9s %9s %8s %7s %8s %7s %7s\n", "shape", "M", "N", "K", "Lt us", "cuBLAS us",
              "TFLOPS", "GB/s", "floor us", "xfloor", "Lt/cuBLAS");
  nlohmann::json linear_rows = nlohmann::json::array();
  for (const LinearResult& r : linear) {
    std::printf("%-10s %5ld %7ld %6ld %9.1f %9.1f %8.1f %7.0f %8.1f %7.2f %7.2f\n", r.name.c_str(), r.m, r.n, r.k,
                r.lt_us, r.cublas_us, r.flops / r.lt_us / 1e6, r.bytes / r.lt_us / 1e3, r.floor_us,
                r.lt_us / r.floor_us, r.lt_us / r.cublas_us);
    linear_rows.push_back({{"shape", r.name}, {"m", r.m}, {"n", r.n}, {"k", r.k}, {"lt_us", r.lt_us},
                           {"cublas_us", r.cublas_us}, {"tflops", r.flops / r.lt_us / 1e6},
                           {"gbps", r.bytes / r.lt_us / 1e3}, {"floor_us", r.floor_us}, {"bytes", r.bytes},
                           {"flops", r.flops}});
  }

  std::printf("\nmoe decode (moe_experts_cuda, uniform routing; GB/s of the active experts' weights)\n");
  std::printf("%-8s %6s %6s %7s %9s %9s %8s %7s %8s\n", "model", "tokens", "rows", "active", "us", "wGB/s",
              "floor us", "xfloor", "TFLOPS");
  nlohmann::json decode_rows = nlohmann::json::array();
  for (const MoeResult& r : decode) {
    std::printf("%-8s %6ld %6ld %7ld %9.1f %9.0f %8.1f %7.2f %8.1f\n", r.name.c_str(), r.tokens, r.rows,
                r.active_experts, r.us, r.weight_bytes / r.us / 1e3, r.floor_us, r.us / r.floor_us,
                r.flops / r.us / 1e6);
    decode_rows.push_back({{"model", r.name}, {"tokens", r.tokens}, {"rows", r.rows},
                           {"active_experts", r.active_experts}, {"us", r.us},
                           {"weight_gbps", r.weight_bytes / r.us / 1e3}, {"floor_us", r.floor_us},
                           {"bytes", r.bytes}, {"flops", r.flops}});
  }

  std::printf("\nmoe prefill (TFLOPS vs two dense cuBLASLt GEMMs of the same FLOPs; floor: max of the bytes and "
              "the dense time)\n");
  std::printf("%-8s %6s %6s %7s %9s %9s %8s %9s %8s %7s %8s %7s\n", "model", "tokens", "rows", "active", "kernel",
              "us", "TFLOPS", "dense us", "dTFLOPS", "xdense", "floor us", "xfloor");
  nlohmann::json prefill_rows = nlohmann::json::array();
  for (const MoeResult& r : prefill) {
    const double floor_us = std::max(r.floor_us, r.dense_us);
    std::printf("%-8s %6ld %6ld %7ld %9s %9.1f %8.1f %9.1f %8.1f %7.2f %8.1f %7.2f\n", r.name.c_str(), r.tokens,
                r.rows, r.active_experts, r.kernel.c_str(), r.us, r.flops / r.us / 1e6, r.dense_us, r.flops / r.dense_us / 1e6,
                r.us / r.dense_us, floor_us, r.us / floor_us);
    prefill_rows.push_back({{"model", r.name}, {"tokens", r.tokens}, {"rows", r.rows},
                            {"active_experts", r.active_experts}, {"kernel", r.kernel}, {"us", r.us},
                            {"tflops", r.flops / r.us / 1e6},
                            {"dense_us", r.dense_us}, {"dense_tflops", r.flops / r.dense_us / 1e6},
                            {"bytes_floor_us", r.floor_us}, {"flops", r.flops}, {"bytes", r.bytes}});
  }

  write_report(out_dir, "gemm", prop.name, command_line(argc, argv),
               {{"card", prop.name},
                {"sms", prop.multiProcessorCount},
                {"copy_gbps_memcpy", copy},
                {"copy_gbps_kernel", copy_kernel},
                {"linear", linear_rows},
                {"moe_decode", decode_rows},
                {"moe_prefill", prefill_rows}});
  MLA_CUBLAS_CHECK(cublasDestroy(cublas));
  MLA_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}

}  // namespace
}  // namespace mlaserve::bench

int main(int argc, char** argv) {
  return mlaserve::bench::run_program("gemm_bench", mlaserve::bench::run, argc, argv);
}
