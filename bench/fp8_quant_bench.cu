// Benchmark of the activation quantiser (ops/fp8_quant.h): quantize_activations_fp8_cuda and
// silu_mul_quantize_fp8_cuda at the prefill-sized inputs the FP8 model quantises (the routed
// experts' gathered rows and their SwiGLU state, the dense MLP's state, the hidden rows), beside
// the HBM floor. A program, not a test: it prints a table and writes JSON.
//
//   fp8_quant_bench [--out DIR]
//
// Bytes: x read once (K bf16 a row, 2K with SwiGLU) + the e4m3 codes and the f32 scales written
// once; the floor is bytes over the copy bandwidth (cudaMemcpyAsync of 1 GiB, read + write,
// measured in the same run). Timing: inputs uniform random, as many copies as pass 256 MB (> 4x
// the L2) used in rotation; a CUDA graph of 10 calls replayed, the median of 10 replays.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_main.h"
#include "bench_report.h"
#include "bench_timing.h"
#include "copy_bandwidth.h"
#include "core/cuda_check.h"
#include "core/tensor.h"
#include "ops/fp8_block.h"
#include "ops/fp8_quant.h"
#include "ops/random_fill.h"

namespace mlaserve::bench {
namespace {

constexpr double kRotateBytes = 256e6;

struct Case {
  const char* name;
  int64_t rows, k;  // output [rows, k]; the input is [rows, 2k] with SwiGLU
  bool swiglu;
};

// V2-Lite (H 2048, routed Im 1408, top-6, dense Im 10944) at a 1,600-token step (9,600 gathered
// rows) and an 8,192-token chunk; V3 (H 7168, Im 2048, top-8) at an 8,192-token chunk.
constexpr Case kCases[] = {
    {"v2l.hidden T1600", 1600, 2048, false},          {"v2l.gathered T1600", 9600, 2048, false},
    {"v2l.routed_swiglu T1600", 9600, 1408, true},    {"v2l.shared_swiglu T1600", 1600, 2816, true},
    {"v2l.dense_swiglu T1600", 1600, 10944, true},    {"v2l.gathered T8192", 49152, 2048, false},
    {"v3.hidden T8192", 8192, 7168, false},           {"v3.routed_swiglu T8192", 65536, 2048, true},
};

int run(int argc, char** argv) {
  std::string out_dir = "bench/results";
  if (!parse_out(argc, argv, out_dir)) return 2;
  cudaDeviceProp prop{};
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  Timer timer;
  const double copy = memcpy_gbps(stream);
  std::printf("card: %s, %d SMs; copy %.0f GB/s (memcpy, read + write)\n", prop.name, prop.multiProcessorCount, copy);
  std::printf("\n%-26s %6s %6s %7s %9s %9s %8s %8s\n", "input", "rows", "K", "SwiGLU", "us", "floor us", "of floor",
              "GB/s");

  nlohmann::json rows = nlohmann::json::array();
  for (const Case& c : kCases) {
    const int64_t width = c.swiglu ? 2 * c.k : c.k, groups = ops::fp8_num_blocks(c.k);
    const double bytes = static_cast<double>(c.rows) * (2.0 * width + c.k + 4.0 * groups);
    const int copies = static_cast<int>(std::max(1.0, kRotateBytes / bytes + 1.0));
    std::vector<Tensor> xs, qs, ss;
    for (int i = 0; i < copies; ++i) {
      xs.push_back(Tensor::empty({c.rows, width}, DType::kBF16, Device::kCUDA));
      ops::fill_uniform({static_cast<uint64_t>(i + 1), 4.0f, 0.0f}, xs.back(), Stream{stream});
      qs.push_back(Tensor::empty({c.rows, c.k}, DType::kF8E4M3, Device::kCUDA));
      ss.push_back(Tensor::empty({c.rows, groups}, DType::kF32, Device::kCUDA));
    }
    const ops::ActQuantParams act{};
    const double us = timer.graph_us(stream, 10, 10, [&](int i) {
      const int j = i % copies;
      if (c.swiglu) {
        ops::silu_mul_quantize_fp8_cuda(xs[j], act, qs[j], ss[j], stream);
      } else {
        ops::quantize_activations_fp8_cuda(xs[j], act, qs[j], ss[j], stream);
      }
    });
    const double floor_us = bytes / copy / 1e3;
    std::printf("%-26s %6ld %6ld %7s %9.1f %9.1f %8.2f %8.0f\n", c.name, c.rows, c.k, c.swiglu ? "yes" : "no", us,
                floor_us, floor_us / us, bytes / us / 1e3);
    rows.push_back({{"input", c.name},
                    {"rows", c.rows},
                    {"k", c.k},
                    {"swiglu", c.swiglu},
                    {"us", us},
                    {"bytes", bytes},
                    {"floor_us", floor_us},
                    {"fraction_of_floor", floor_us / us}});
  }
  write_report(out_dir, "fp8_quant", prop.name, command_line(argc, argv),
               {{"card", prop.name}, {"copy_gbps_memcpy", copy}, {"rows", rows}});
  MLA_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}

}  // namespace
}  // namespace mlaserve::bench

int main(int argc, char** argv) {
  return mlaserve::bench::run_program("fp8_quant_bench", mlaserve::bench::run, argc, argv);
}
