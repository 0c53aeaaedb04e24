// The weight-streaming kernels of a decode step, one at a time, against the copy bandwidth
// (issue #7): the GEMV path of linear_cuda (ops/linear.h) at DeepSeek-V2-Lite's and V3's
// projection shapes for T = 1, 2, 4, 8, through each of its kernels (the CUDA-core one,
// linear_gemv.cuh, and the tensor-core one, linear_gemv_mma.cuh; "-" where its rows of x do not
// fit) and the one linear_cuda picks (choose_gemv_kernel, ops/cuda/linear_gemv.h), and the routed experts' decode tiles (moe_grouped_gemm_sm80.h) at
// V2-Lite's batch 1, 2, 4 and 8 with each cp.async ring (MoeDecodeRing: the model's choice per GEMM
// and every fixed one; kStream is the one ring of before), and the MLA W_UK absorption
// (mla_absorb_query_cuda) at V2-Lite's 16 heads for T = 16, 64, 256 through our mma.sync kernel
// (mla_absorb_mma.cuh) and through cuBLASLt (mla_absorb_query_cublaslt, the path it replaces),
// with each one's host time per call. A program, not a test: it prints a table and writes JSON.
//
//   decode_gemv_bench [--out DIR]
//
// Timing: operands random; as many weight copies (GEMV) or routings over all 64 experts (MoE) as
// it takes to pass 512 MB (> 8x the L2), used in rotation, so every call streams its weights from
// HBM; a CUDA graph of the calls back to back (as in a decode step, so programmatic dependent
// launch overlaps each call with the one before it) is replayed, each replay timed with events;
// the figure is the median replay over its calls. GB/s counts the weight bytes once (x and the
// outputs are < 0.5% of them); "of copy" is that rate over cudaMemcpyAsync's (read + write)
// measured in the same run. The absorption's "host us" is the wall time of enqueueing 200 eager
// calls divided by 200 (no synchronisation inside: what a rank's host pays per layer), its GB/s
// counts W_UK's bytes (n·dn·dc bf16).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "bench_main.h"
#include "bench_report.h"
#include "bench_routing.h"
#include "bench_timing.h"
#include "copy_bandwidth.h"
#include "core/cuda_check.h"
#include "core/tensor.h"
#include "ops/cuda/linear_gemv.h"
#include "ops/cuda/mla_absorb_mma.h"
#include "ops/cuda/moe_grouped_gemm_sm80.h"
#include "ops/cuda/moe_grouped_gemm_sm80_heuristics.h"
#include "ops/linear.h"
#include "ops/mla_absorb.h"
#include "ops/random_fill.h"

namespace mlaserve::bench {
namespace {

constexpr double kRotateBytes = 512e6;

void fill(Tensor& t, uint64_t seed, cudaStream_t stream) {
  ops::fill_uniform_cuda(ops::UniformFill{seed, 1.0f, 0.0f}, t, stream);
}

struct GemvShape {
  const char* name;
  int64_t n, k;
  DType out;
};

const std::vector<GemvShape> kGemvShapes = {
    {"v2l.q_proj", 3072, 2048, DType::kBF16},         {"v2l.kv_a_proj", 576, 2048, DType::kBF16},
    {"v2l.o_proj", 2048, 2048, DType::kBF16},         {"v2l.shared_gate_up", 5632, 2048, DType::kBF16},
    {"v2l.shared_down", 2048, 2816, DType::kBF16},    {"v2l.router", 64, 2048, DType::kF32},
    {"v2l.dense_gate_up", 21888, 2048, DType::kBF16}, {"v2l.dense_down", 2048, 10944, DType::kBF16},
    {"v3.q_a_proj", 1536, 7168, DType::kBF16},        {"v3.q_b_proj", 24576, 1536, DType::kBF16},
    {"v3.kv_a_proj", 576, 7168, DType::kBF16},        {"v3.o_proj", 7168, 16384, DType::kBF16},
    {"v3.shared_gate_up", 4096, 7168, DType::kBF16},  {"v3.shared_down", 7168, 2048, DType::kBF16},
};

int run(int argc, char** argv) {
  std::string out_dir = "bench/results";
  if (!parse_out(argc, argv, out_dir)) return 2;
  cudaDeviceProp prop{};
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream = nullptr;
  MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const double copy_gbps = memcpy_gbps(stream);
  Timer timer;
  std::printf("card: %s; copy %.0f GB/s (cudaMemcpyAsync, read + write)\n\n", prop.name, copy_gbps);

  nlohmann::json gemv_rows = nlohmann::json::array();
  // Per shape and T: each kernel's time and its weight rate over the copy rate, and linear_cuda's choice.
  std::printf("%-20s %6s %6s %3s %9s %9s %8s %8s %12s\n", "gemv", "N", "K", "T", "cc us", "tc us", "cc copy",
              "tc copy", "auto");
  for (const GemvShape& s : kGemvShapes) {
    const double w_bytes = 2.0 * s.n * s.k;
    const int copies = static_cast<int>(std::clamp(kRotateBytes / w_bytes, 2.0, 256.0));
    std::vector<Tensor> ws;
    for (int c = 0; c < copies; ++c) {
      ws.push_back(Tensor::empty({s.n, s.k}, DType::kBF16, Device::kCUDA));  // [N, K]
      fill(ws.back(), 100 + c, stream);
    }
    for (int64_t t : {1, 2, 4, 8}) {
      Tensor x = Tensor::empty({t, s.k}, DType::kBF16, Device::kCUDA);  // [T, K]
      fill(x, 7, stream);
      Tensor y = Tensor::empty({t, s.n}, s.out, Device::kCUDA);  // [T, N]
      const auto time = [&](ops::GemvKernel kernel) {
        return timer.graph_us(stream, copies, 20, [&](int i) { ops::linear_gemv_cuda(x, ws[i], y, stream, kernel); });
      };
      const double cc_us = time(ops::GemvKernel::kCudaCore);
      const bool tc_fits = ops::linear_gemv_mma_fits(t, s.k);
      const double tc_us = tc_fits ? time(ops::GemvKernel::kTensorCore) : 0.0;
      const ops::GemvKernel chosen = ops::choose_gemv_kernel(t, s.k);
      const double auto_us = chosen == ops::GemvKernel::kTensorCore ? tc_us : cc_us;
      const double cc_copy = w_bytes / cc_us / 1e3 / copy_gbps, tc_copy = w_bytes / tc_us / 1e3 / copy_gbps;
      char tc_us_s[16] = "-", tc_copy_s[16] = "-";
      if (tc_fits) {
        std::snprintf(tc_us_s, sizeof tc_us_s, "%.2f", tc_us);
        std::snprintf(tc_copy_s, sizeof tc_copy_s, "%.2f", tc_copy);
      }
      std::printf("%-20s %6lld %6lld %3lld %9.2f %9s %8.2f %8s %12s\n", s.name, static_cast<long long>(s.n),
                  static_cast<long long>(s.k), static_cast<long long>(t), cc_us, tc_us_s, cc_copy, tc_copy_s,
                  ops::gemv_kernel_name(chosen));
      nlohmann::json row = {{"shape", s.name}, {"n", s.n}, {"k", s.k}, {"tokens", t},
                            {"us", auto_us},  // linear_cuda's (the chosen kernel's)
                            {"weight_gbps", w_bytes / auto_us / 1e3}, {"of_copy", w_bytes / auto_us / 1e3 / copy_gbps},
                            {"auto_kernel", ops::gemv_kernel_name(chosen)}, {"cuda_core_us", cc_us},
                            {"cuda_core_of_copy", cc_copy}};
      row["tensor_core_us"] = tc_fits ? nlohmann::json(tc_us) : nlohmann::json(nullptr);
      row["tensor_core_of_copy"] = tc_fits ? nlohmann::json(tc_copy) : nlohmann::json(nullptr);
      gemv_rows.push_back(row);
    }
  }

  // V2-Lite's routed experts: every call a fresh routing of T tokens to 6 distinct experts each,
  // over all 64 experts' weights (1.1 GB).
  constexpr int64_t kExperts = 64, kHidden = 2048, kInter = 1408, kTopK = 6;
  ops::ExpertWeights w{Tensor::empty({kExperts, 2 * kInter, kHidden}, DType::kBF16, Device::kCUDA),
                       Tensor::empty({kExperts, kHidden, kInter}, DType::kBF16, Device::kCUDA), {}, {}};
  fill(w.gate_up, 500, stream);
  fill(w.down, 501, stream);
  const double expert_bytes = 2.0 * 3 * kHidden * kInter;
  nlohmann::json moe_rows = nlohmann::json::array();
  // The rings as the table and the JSON name them.
  const std::vector<std::pair<ops::sm80::MoeDecodeRing, const char*>> rings = {
      {ops::sm80::MoeDecodeRing::kAuto, "auto"},       {ops::sm80::MoeDecodeRing::k2PerSm, "11st_2sm"},
      {ops::sm80::MoeDecodeRing::k3PerSm, "7st_3sm"},  {ops::sm80::MoeDecodeRing::k4PerSm, "5st_4sm"},
      {ops::sm80::MoeDecodeRing::k5PerSm, "4st_5sm"},  {ops::sm80::MoeDecodeRing::k7PerSm, "3st_7sm"},
      {ops::sm80::MoeDecodeRing::kStream, "6st_3sm"}};
  std::printf("\n%-20s %3s %8s %9s %9s %9s %8s %9s\n", "moe decode tiles", "T", "active", "ring", "us", "GB/s",
              "of copy", "floor us");
  for (int64_t t : {1, 2, 4, 8}) {
    double active_mean = 0.0;
    const std::vector<Tensor> offsets = random_routings(kExperts, kTopK, t, expert_bytes, kRotateBytes, active_mean);
    const int sets = static_cast<int>(offsets.size());
    const double weight_bytes = active_mean * expert_bytes;
    const int64_t rows = t * kTopK;
    Tensor x = Tensor::empty({rows, kHidden}, DType::kBF16, Device::kCUDA);       // [P, H]
    Tensor hidden = Tensor::empty({rows, kInter}, DType::kBF16, Device::kCUDA);   // [P, Im]
    Tensor out = Tensor::empty({rows, kHidden}, DType::kBF16, Device::kCUDA);     // [P, H]
    fill(x, 300, stream);
    for (const auto& [ring_value, ring_name] : rings) {
      const ops::sm80::MoeDecodeRing ring = ring_value;  // a lambda captures no structured binding (C++17)
      const double us = timer.graph_us(stream, sets, 20, [&](int i) {
        ops::moe_experts_sm80_decode(x, offsets[i], w, hidden, out, ring, stream);
      });
      const double gbps = weight_bytes / us / 1e3;
      const double floor_us = weight_bytes / copy_gbps / 1e3;  // the weights at the copy rate
      std::printf("%-20s %3lld %8.1f %9s %9.2f %9.0f %8.2f %9.2f%s\n", "v2l.routed", static_cast<long long>(t),
                  active_mean, ring_name, us, gbps, gbps / copy_gbps, floor_us,
                  ring == ops::sm80::MoeDecodeRing::kAuto ? "  (the model's)" : "");
      moe_rows.push_back({{"tokens", t}, {"active_experts", active_mean}, {"ring", ring_name}, {"us", us},
                          {"floor_us", floor_us}, {"weight_gbps", gbps}, {"of_copy", gbps / copy_gbps}});
    }
  }

  // The W_UK absorption at V2-Lite's shapes: q [T, 16, 192] -> q_abs [T, 16, 576], w_kv_b [16·256, 512].
  constexpr int64_t kHeads = 16, kDn = 128, kDr = 64, kDv = 128, kDc = 512;
  const double wuk_bytes = 2.0 * kHeads * kDn * kDc;
  const double kvb_bytes = 2.0 * kHeads * (kDn + kDv) * kDc;
  const int kvb_copies = static_cast<int>(std::clamp(kRotateBytes / kvb_bytes, 2.0, 256.0));
  std::vector<Tensor> kv_bs;
  for (int c = 0; c < kvb_copies; ++c) {
    kv_bs.push_back(Tensor::empty({kHeads * (kDn + kDv), kDc}, DType::kBF16, Device::kCUDA));  // [n·rph, dc]
    fill(kv_bs.back(), 700 + c, stream);
  }
  nlohmann::json absorb_rows = nlohmann::json::array();
  std::printf("\n%-20s %3s %9s %9s %9s %8s %9s\n", "absorb (16 heads)", "T", "path", "us", "GB/s", "of copy",
              "host us");
  for (int64_t t : {16, 64, 256}) {
    Tensor q = Tensor::empty({t, kHeads, kDn + kDr}, DType::kBF16, Device::kCUDA);  // [T, n, dn + dr]
    fill(q, 9, stream);
    Tensor q_abs = Tensor::empty({t, kHeads, kDc + kDr}, DType::kBF16, Device::kCUDA);  // [T, n, dc + dr]
    using AbsorbFn = void (*)(const Tensor&, const Tensor&, Tensor&, cudaStream_t);
    const std::vector<std::pair<AbsorbFn, const char*>> paths = {
        {ops::mla_absorb_query_cuda, "ours"}, {ops::mla_absorb_query_cublaslt, "cublaslt"}};
    for (const auto& [fn_value, path] : paths) {
      const AbsorbFn fn = fn_value;
      const double us = timer.graph_us(stream, kvb_copies, 20, [&](int i) { fn(q, kv_bs[i], q_abs, stream); });
      constexpr int kHostCalls = 200;
      MLA_CUDA_CHECK(cudaStreamSynchronize(stream));
      const auto h0 = std::chrono::steady_clock::now();
      for (int i = 0; i < kHostCalls; ++i) fn(q, kv_bs[i % kvb_copies], q_abs, stream);
      const auto h1 = std::chrono::steady_clock::now();
      MLA_CUDA_CHECK(cudaStreamSynchronize(stream));
      const double host_us = std::chrono::duration<double, std::micro>(h1 - h0).count() / kHostCalls;
      const double gbps = wuk_bytes / us / 1e3;
      std::printf("%-20s %3lld %9s %9.2f %9.0f %8.2f %9.2f\n", "v2l.absorb_wuk", static_cast<long long>(t), path, us,
                  gbps, gbps / copy_gbps, host_us);
      absorb_rows.push_back({{"tokens", t}, {"heads", kHeads}, {"path", path}, {"us", us}, {"weight_gbps", gbps},
                             {"of_copy", gbps / copy_gbps}, {"host_us", host_us}});
    }
  }
  MLA_CUDA_CHECK(cudaStreamDestroy(stream));
  write_report(out_dir, "decode_gemv", prop.name, command_line(argc, argv),
               {{"card", prop.name},
                {"copy_gbps", copy_gbps},
                {"gemv", gemv_rows},
                {"moe_decode", moe_rows},
                {"absorb", absorb_rows}});
  return 0;
}

}  // namespace
}  // namespace mlaserve::bench

int main(int argc, char** argv) { return mlaserve::bench::run_program("decode_gemv_bench", mlaserve::bench::run, argc, argv); }
