// ops::sample on the GPU (sample_cuda: temperature, top-k, top-p, min-p and the seeded draw)
// at decode batches 1 / 64 / 256 over DeepSeek-V3's vocabulary (V = 129280 f32 logits), beside
// greedy_sample_cuda (one pass over the row), the floor (reading the logits once at the
// measured device-to-device copy bandwidth) and the path it replaces (copy the logits to the
// host, sample_cpu there; timed once, at batches 1 and 64).
//
//   sampling_bench [--out DIR] [--reps N]
//
// Logits: normal(0, 3) per token (a spread like a real model's at temperature 1). Prints a table
// and writes bench/results/sampling_<card>_<date>.json with the card, date and command.
// The batch-1 row (517 KB) stays in L2 between repetitions; larger batches do not fit.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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
#include "ops/sampling.h"

namespace mlaserve::bench {
namespace {

constexpr int64_t kVocab = 129280;

struct Case {
  const char* name;
  ops::SamplingOptions options;  // temperature <= 0: greedy_sample_cuda
};

const std::vector<Case> kCases = {
    {"greedy", {0.0f, 0, 1.0f, 0.0f}},
    {"temperature", {1.0f, 0, 1.0f, 0.0f}},
    {"top_k50", {0.7f, 50, 1.0f, 0.0f}},
    {"top_p0.9", {1.0f, 0, 0.9f, 0.0f}},
    {"min_p0.05", {1.0f, 0, 1.0f, 0.05f}},
    {"k50_p0.9_minp0.02", {0.8f, 50, 0.9f, 0.02f}},
};

int run(int argc, char** argv) {
  std::string out_dir = "bench/results";
  int reps = 50;
  if (!parse_out_and_reps(argc, argv, out_dir, reps)) return 2;
  reps = std::max(5, reps);
  cudaDeviceProp prop{};
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  MLA_CUDA_CHECK(cudaStreamCreate(&stream));
  Timer timer;
  const double gbps = memcpy_gbps(stream);
  std::printf("card: %s, %d SMs, L2 %d MB; copy %.0f GB/s (device-to-device memcpy)\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize >> 20, gbps);

  std::printf("\n%-6s %-20s %10s %10s %8s %14s\n", "batch", "case", "gpu us", "floor us", "xfloor", "host path us");
  nlohmann::json rows = nlohmann::json::array();
  std::mt19937_64 rng(1);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (const int64_t batch : {int64_t{1}, int64_t{64}, int64_t{256}}) {
    Tensor host = Tensor::empty({batch, kVocab}, DType::kF32);
    for (int64_t i = 0; i < batch * kVocab; ++i) host.data<float>()[i] = normal(rng);
    const Tensor logits = host.to(Device::kCUDA);
    Tensor ids = Tensor::empty({batch}, DType::kI32, Device::kCUDA);
    const double floor_us = static_cast<double>(logits.nbytes()) / gbps / 1e3;
    for (const Case& c : kCases) {
      const std::vector<ops::SamplingOptions> options(static_cast<size_t>(batch), c.options);
      std::vector<ops::SamplingKey> keys(static_cast<size_t>(batch));
      auto gpu = [&](int rep) {
        for (int64_t b = 0; b < batch; ++b) keys[b] = {static_cast<uint64_t>(b), static_cast<uint64_t>(rep)};
        if (c.options.temperature <= 0.0f) {
          ops::greedy_sample_cuda(logits, ids, stream);
        } else {
          ops::sample_cuda(logits, options.data(), keys.data(), ids, stream);
        }
      };
      timer.median_us(stream, 3, gpu);
      const double us = timer.median_us(stream, reps, gpu);
      // The replaced path, once (batch <= 64: seconds at 256): the logits to the host, sample_cpu.
      double host_path_us = 0.0;
      if (batch <= 64) {
        Tensor host_ids = Tensor::empty({batch}, DType::kI32);
        const auto t0 = std::chrono::steady_clock::now();
        const Tensor copied = logits.to(Device::kCPU);
        ops::sample_cpu(copied, options, keys, host_ids);
        host_path_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      }
      std::printf("%-6lld %-20s %10.1f %10.1f %8.2f %14.0f\n", static_cast<long long>(batch), c.name, us, floor_us,
                  us / floor_us, host_path_us);
      rows.push_back({{"batch", batch},
                      {"vocab", kVocab},
                      {"case", c.name},
                      {"gpu_us", us},
                      {"floor_us", floor_us},
                      {"host_path_us", host_path_us}});
    }
  }

  write_report(out_dir, "sampling", prop.name, command_line(argc, argv),
               {{"card", prop.name}, {"sms", prop.multiProcessorCount}, {"copy_gbps_memcpy", gbps}, {"results", rows}});
  MLA_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}

}  // namespace
}  // namespace mlaserve::bench

int main(int argc, char** argv) {
  return mlaserve::bench::run_program("sampling_bench", mlaserve::bench::run, argc, argv);
}
