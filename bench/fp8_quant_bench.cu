// Benchmark of the activation quantiser (ops/fp8_quant.h): quantize_activations_fp8_cuda and
// silu_mul_quantize_fp8_cuda at the prefill-sized inputs the FP8 model quantises (the routed
// experts' gathered rows and their SwiGLU state, the dense MLP's state, the hidden rows) and the
// SwiGLU state of decode steps, beside the HBM floor; then the residual add + RMSNorm that feeds
// FP8 linears with its quantisation fused (add_rms_norm_fp8_cuda, ops/rms_norm_fp8.h, both scale
// layouts) against the norm followed by the quantiser (what the model ran before), at decode and
// prefill sizes. A program, not a test: it prints two tables and writes JSON.
//
//   fp8_quant_bench [--out DIR]
//
// Bytes: x read once (K bf16 a row, 2K with SwiGLU) + the e4m3 codes and the f32 scales written
// once (with SwiGLU in both layouts, as the model's down projections take them); the floor is
// bytes over the copy bandwidth (cudaMemcpyAsync of 1 GiB, read + write, measured in the same
// run). Timing: inputs uniform random, as many copies as pass 256 MB (> 4x the L2) used in
// rotation; a CUDA graph of 10 calls replayed, the median of 10 replays.
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
#include "ops/rms_norm.h"
#include "ops/rms_norm_fp8.h"

namespace mlaserve::bench {
namespace {

constexpr double kRotateBytes = 256e6;

struct Case {
  const char* name;
  int64_t rows, k;  // output [rows, k]; the input is [rows, 2k] with SwiGLU
  bool swiglu;
};

// V2-Lite (H 2048, routed Im 1408, top-6, dense Im 10944) at a 1,600-token step (9,600 gathered
// rows) and an 8,192-token chunk; V3 (H 7168, Im 2048, top-8) at an 8,192-token chunk. Then the
// SwiGLU quantisers of decode steps (one CTA or a few, latency-bound): V3's shared expert and a
// TP8 rank's shares of it (256 channels) and of the dense MLP (18432 / 8 = 2304), at 1 and 8 tokens.
constexpr Case kCases[] = {
    {"v2l.hidden T1600", 1600, 2048, false},          {"v2l.gathered T1600", 9600, 2048, false},
    {"v2l.routed_swiglu T1600", 9600, 1408, true},    {"v2l.shared_swiglu T1600", 1600, 2816, true},
    {"v2l.dense_swiglu T1600", 1600, 10944, true},    {"v2l.gathered T8192", 49152, 2048, false},
    {"v3.hidden T8192", 8192, 7168, false},           {"v3.routed_swiglu T8192", 65536, 2048, true},
    {"v3.shared_swiglu T1", 1, 2048, true},           {"v3.tp8_shared_swiglu T1", 1, 256, true},
    {"v3.tp8_dense_swiglu T1", 1, 2304, true},        {"v3.tp8_shared_swiglu T8", 8, 256, true},
    {"v3.tp8_dense_swiglu T8", 8, 2304, true},
};

// The norm before FP8 linears: V2-Lite's and V3's hidden rows at decode batches and a prefill.
struct NormCase {
  const char* name;
  int64_t rows, h;
};
constexpr NormCase kNormCases[] = {
    {"v2l T1", 1, 2048},   {"v2l T16", 16, 2048}, {"v2l T64", 64, 2048}, {"v2l T1600", 1600, 2048},
    {"v3 T1", 1, 7168},    {"v3 T16", 16, 7168},  {"v3 T64", 64, 7168},  {"v3 T8192", 8192, 7168},
};

// add_rms_norm_cuda + quantize_activations_fp8_cuda (token-major; the group-major layout a
// second pass) against add_rms_norm_fp8_cuda writing both, graph-timed as above (rotating at most
// 64 copies: decode-sized rows stay in L2, as in a step, where the kernel before just wrote them).
nlohmann::json norm_table(cudaStream_t stream, Timer& timer) {
  std::printf("\n%-12s %6s %6s %12s %12s %12s\n", "norm", "rows", "H", "norm+q us", "norm+q+qT us", "fused us");
  nlohmann::json rows = nlohmann::json::array();
  for (const NormCase& c : kNormCases) {
    const int64_t groups = ops::fp8_num_blocks(c.h);
    const double bytes = static_cast<double>(c.rows) * (2.0 * c.h * 3 + c.h + 8.0 * groups);
    const int copies = static_cast<int>(std::clamp(kRotateBytes / bytes + 1.0, 1.0, 64.0));
    std::vector<Tensor> xs, res, outs;
    std::vector<ops::Fp8Activations> qs;
    for (int i = 0; i < copies; ++i) {
      xs.push_back(Tensor::empty({c.rows, c.h}, DType::kBF16, Device::kCUDA));
      res.push_back(Tensor::empty({c.rows, c.h}, DType::kBF16, Device::kCUDA));
      ops::fill_uniform({static_cast<uint64_t>(2 * i + 1), 1.0f, 0.0f}, xs.back(), Stream{stream});
      ops::fill_uniform({static_cast<uint64_t>(2 * i + 2), 4.0f, 0.0f}, res.back(), Stream{stream});
      outs.push_back(Tensor::empty({c.rows, c.h}, DType::kBF16, Device::kCUDA));
      qs.push_back({Tensor::empty({c.rows, c.h}, DType::kF8E4M3, Device::kCUDA),
                    Tensor::empty({c.rows, groups}, DType::kF32, Device::kCUDA),
                    Tensor::empty({groups, c.rows}, DType::kF32, Device::kCUDA)});
    }
    Tensor weight = Tensor::empty({c.h}, DType::kBF16, Device::kCUDA);
    ops::fill_uniform({99, 1.0f, 0.0f}, weight, Stream{stream});
    const ops::ActQuantParams act{};
    auto two_ops = [&](bool group_major) {
      return timer.graph_us(stream, 10, 10, [&](int i) {
        const int j = i % copies;
        ops::add_rms_norm_cuda(xs[j], res[j], weight, 1e-6f, outs[j], stream);
        ops::quantize_activations_fp8_cuda(outs[j], act, qs[j].x_q, qs[j].scales, stream);
        if (group_major) {
          ops::quantize_activations_fp8_cuda(outs[j], act, qs[j].x_q, qs[j].scales_t, stream,
                                             ops::Fp8ScaleLayout::kGroupMajor);
        }
      });
    };
    const double separate = two_ops(false), separate_t = two_ops(true);
    const double fused = timer.graph_us(stream, 10, 10, [&](int i) {
      const int j = i % copies;
      ops::add_rms_norm_fp8_cuda(xs[j], res[j], weight, 1e-6f, outs[j], act, qs[j], stream);
    });
    std::printf("%-12s %6ld %6ld %12.2f %12.2f %12.2f\n", c.name, c.rows, c.h, separate, separate_t, fused);
    rows.push_back({{"input", c.name}, {"rows", c.rows}, {"h", c.h}, {"norm_then_quantize_us", separate},
                    {"norm_then_quantize_both_layouts_us", separate_t}, {"fused_us", fused}});
  }
  return rows;
}

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
    const double bytes = static_cast<double>(c.rows) * (2.0 * width + c.k + (c.swiglu ? 8.0 : 4.0) * groups);
    // At most 64 copies: decode-sized rows stay in L2, as in a step, where the kernel before wrote them.
    const int copies = static_cast<int>(std::clamp(kRotateBytes / bytes + 1.0, 1.0, 64.0));
    std::vector<Tensor> xs, qs, ss, sts;
    for (int i = 0; i < copies; ++i) {
      xs.push_back(Tensor::empty({c.rows, width}, DType::kBF16, Device::kCUDA));
      ops::fill_uniform({static_cast<uint64_t>(i + 1), 4.0f, 0.0f}, xs.back(), Stream{stream});
      qs.push_back(Tensor::empty({c.rows, c.k}, DType::kF8E4M3, Device::kCUDA));
      ss.push_back(Tensor::empty({c.rows, groups}, DType::kF32, Device::kCUDA));
      sts.push_back(Tensor::empty({groups, c.rows}, DType::kF32, Device::kCUDA));  // the model's SwiGLU writes both
    }
    const ops::ActQuantParams act{};
    const double us = timer.graph_us(stream, 10, 10, [&](int i) {
      const int j = i % copies;
      if (c.swiglu) {
        ops::Fp8Activations out{qs[j], ss[j], sts[j]};
        ops::silu_mul_quantize_fp8_cuda(xs[j], act, out, stream);
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
  const nlohmann::json norm_rows = norm_table(stream, timer);
  write_report(out_dir, "fp8_quant", prop.name, command_line(argc, argv),
               {{"card", prop.name}, {"copy_gbps_memcpy", copy}, {"rows", rows}, {"norm_rows", norm_rows}});
  MLA_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}

}  // namespace
}  // namespace mlaserve::bench

int main(int argc, char** argv) {
  return mlaserve::bench::run_program("fp8_quant_bench", mlaserve::bench::run, argc, argv);
}
