// The MoE layer's data movement around the experts, against the copy bandwidth: the grouping of
// the token-expert pairs by expert with the row gather (moe_group_and_gather, ops/moe_dispatch.h),
// the weighted combine (moe_combine) and the combine fused with the residual add and the next
// RMSNorm (moe_combine_add_rms_norm, ops/moe_combine_norm.h), at V2-Lite's shapes (H 2048, E 64,
// top-6) for T = 1, 8 (decode), 341 and 342 (2046 and 2052 pairs: either side of the kernels'
// switches), 1600 and 8192 (prefill chunks), and V3's (H 7168, E 256, top-8) at T = 8192. Each op
// through each of its kernels (moe_dispatch_kernels.h): the grouping's one-CTA and multi-CTA
// sorts, the combines' scan and rows kernels; "*" marks the op's own choice.
// A program, not a test: it prints a table and writes JSON.
//
//   moe_dispatch_bench [--out DIR] [--reps N]
//
// Timing: uniform routings (each token to k distinct experts), random bf16 rows; as many sets of
// every tensor an op touches as it takes to pass 512 MB (> 8x the L2), used in rotation, so each
// call reads and writes HBM as a prefill layer does; the calls back to back in a CUDA graph (as
// in the engine, so programmatic dependent launch overlaps each call's kernels with the one
// before), the median of N replays (default 20) over its calls. "floor us" is the op's bytes at
// cudaMemcpyAsync's rate (read + write, measured in the same run): rows gathered or combined,
// each token row of x, y, shared, residual and out once, the i32 ids and grouping, f32 weights.
// (The commit that added this program ran the ops as they were before the prefill kernels: build
// it for the former figures.)
#include <cuda_runtime_api.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench_main.h"
#include "bench_report.h"
#include "bench_timing.h"
#include "copy_bandwidth.h"
#include "core/cuda_check.h"
#include "core/tensor.h"
#include "ops/cuda/moe_dispatch_kernels.h"
#include "ops/moe_combine_norm.h"
#include "ops/moe_dispatch.h"
#include "ops/random_fill.h"

namespace mlaserve::bench {
namespace {

constexpr double kRotateBytes = 512e6;

struct Shape3 {
  const char* name;
  int64_t hidden, experts, top_k;
};
constexpr Shape3 kV2Lite{"v2l", 2048, 64, 6};
constexpr Shape3 kV3{"v3", 7168, 256, 8};

struct Case {
  Shape3 shape;
  int64_t tokens;
};
const std::vector<Case> kCases = {{kV2Lite, 1},    {kV2Lite, 8},    {kV2Lite, 341}, {kV2Lite, 342},
                                  {kV2Lite, 1600}, {kV2Lite, 8192}, {kV3, 8192}};

Tensor random_tensor(const Shape& shape, DType dtype, uint64_t seed, float half_width, float center,
                     cudaStream_t stream) {
  Tensor t = Tensor::empty(shape, dtype, Device::kCUDA);
  ops::fill_uniform_cuda(ops::UniformFill{seed, half_width, center}, t, stream);
  return t;
}

// [T, k] i32 on the GPU: each token to k distinct experts (a partial Fisher-Yates shuffle).
Tensor uniform_ids(int64_t tokens, int64_t top_k, int64_t experts, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> all(static_cast<size_t>(experts));
  std::iota(all.begin(), all.end(), 0);
  Tensor ids = Tensor::empty({tokens, top_k}, DType::kI32);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < top_k; ++j) {
      std::swap(all[j], all[std::uniform_int_distribution<int64_t>(j, experts - 1)(rng)]);
      ids.data<int32_t>()[t * top_k + j] = all[j];
    }
  }
  return ids.to(Device::kCUDA);
}

// The tensors of one call of each op, for one case.
struct CallSet {
  Tensor x;             // [T, H] the MoE input rows
  Tensor gathered;      // [P, H] x's rows in expert order
  Tensor expert_out;    // [P, H] the experts' outputs in expert order
  Tensor y;             // [T, H] bf16, moe_combine accumulates into it
  Tensor shared_out;    // [T, H] the shared experts' output
  Tensor residual;      // [T, H] the residual stream
  Tensor normed;        // [T, H] the next norm's output
  ops::MoeGrouping grouping;
};

int run(int argc, char** argv) {
  std::string out_dir = "bench/results";
  int reps = 20;
  if (!parse_out_and_reps(argc, argv, out_dir, reps)) return 2;
  cudaDeviceProp prop{};
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream = nullptr;
  MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const double copy_gbps = memcpy_gbps(stream);
  Timer timer;
  std::printf("card: %s; copy %.0f GB/s (cudaMemcpyAsync, read + write)\n\n", prop.name, copy_gbps);
  std::printf("%-22s %-4s %5s %6s %-10s %9s %9s %8s %8s\n", "op", "", "T", "pairs", "kernel", "us", "floor us",
              "of floor", "sets");

  nlohmann::json rows = nlohmann::json::array();
  uint64_t seed = 1;
  for (const Case& c : kCases) {
    const int64_t t = c.tokens, h = c.shape.hidden, e = c.shape.experts, k = c.shape.top_k, pairs = t * k;
    const Tensor ids = uniform_ids(t, k, e, 1000 + static_cast<uint64_t>(t));
    const Tensor weights = random_tensor({t, k}, DType::kF32, ++seed, 0.29f, 0.31f, stream);  // [T, k]
    const Tensor norm_weight = random_tensor({h}, DType::kBF16, ++seed, 0.5f, 1.0f, stream);  // [H]
    const double row_bytes = 2.0 * h, pair_rows = row_bytes * pairs, token_rows = row_bytes * t;
    const double set_bytes = 2 * pair_rows + 5 * token_rows;  // gathered, expert_out, x, y, shared, residual, normed
    const int sets = static_cast<int>(std::clamp(kRotateBytes / set_bytes, 2.0, 64.0));
    std::vector<CallSet> s;
    for (int i = 0; i < sets; ++i) {
      s.push_back({random_tensor({t, h}, DType::kBF16, ++seed, 1.0f, 0.0f, stream),
                   Tensor::empty({pairs, h}, DType::kBF16, Device::kCUDA),
                   random_tensor({pairs, h}, DType::kBF16, ++seed, 1.0f, 0.0f, stream),
                   random_tensor({t, h}, DType::kBF16, ++seed, 0.5f, 0.0f, stream),
                   random_tensor({t, h}, DType::kBF16, ++seed, 0.5f, 0.0f, stream),
                   random_tensor({t, h}, DType::kBF16, ++seed, 8.0f, 0.0f, stream),
                   Tensor::empty({t, h}, DType::kBF16, Device::kCUDA),
                   {Tensor::empty({e + 1}, DType::kI32, Device::kCUDA),
                    Tensor::empty({pairs}, DType::kI32, Device::kCUDA),
                    Tensor::empty({pairs}, DType::kI32, Device::kCUDA)}});
      ops::moe_group_by_expert_cuda(ids, e, s.back().grouping, stream);  // the combine's sorted pairs
    }
    MLA_CUDA_CHECK(cudaStreamSynchronize(stream));

    // Bytes at the copy rate: the i32 ids and grouping (read ids, write pairs and tokens), the
    // rows, the f32 weights.
    const double group_bytes = 12.0 * pairs + token_rows + pair_rows;
    const double combine_bytes = 8.0 * pairs + pair_rows + 2 * token_rows;      // y read and written
    const double norm_bytes = 8.0 * pairs + pair_rows + 4 * token_rows;         // shared, residual x2, normed
    const auto floor_us = [&](double bytes) { return bytes / copy_gbps / 1e3; };
    const auto report = [&](const char* op, const char* kernel, bool chosen, double us, double floor) {
      std::printf("%-22s %-4s %5lld %6lld %-10s %9.2f %9.2f %8.2f %8d\n", op, c.shape.name, static_cast<long long>(t),
                  static_cast<long long>(pairs), (std::string(kernel) + (chosen ? " *" : "")).c_str(), us, floor,
                  floor / us, sets);
      rows.push_back({{"op", op}, {"shape", c.shape.name}, {"tokens", t}, {"pairs", pairs}, {"hidden", h},
                      {"experts", e}, {"top_k", k}, {"kernel", kernel}, {"chosen", chosen}, {"us", us},
                      {"floor_us", floor}, {"of_floor", floor / us}, {"sets", sets}});
    };
    const auto time = [&](const std::function<void(CallSet&)>& fn) {
      return timer.graph_us(stream, sets, reps, [&](int i) { fn(s[static_cast<size_t>(i)]); });
    };

    const ops::MoeGroupKernel group_choice = ops::choose_group_kernel(pairs);
    for (ops::MoeGroupKernel kernel : {ops::MoeGroupKernel::kOneCta, ops::MoeGroupKernel::kMultiCta}) {
      const double us = time([&](CallSet& cs) {
        ops::moe_group_and_gather_cuda(ids, e, cs.x, cs.grouping, cs.gathered, stream, kernel);
      });
      report("group_and_gather", ops::group_kernel_name(kernel), kernel == group_choice, us, floor_us(group_bytes));
    }
    const ops::MoeCombineKernel combine_choice = ops::choose_combine_kernel(pairs, k);
    for (ops::MoeCombineKernel kernel : {ops::MoeCombineKernel::kScan, ops::MoeCombineKernel::kRows}) {
      const double us = time([&](CallSet& cs) {
        ops::moe_combine_cuda(cs.expert_out, cs.grouping.sorted_pairs, weights, cs.y, stream, kernel);
      });
      report("combine", ops::combine_kernel_name(kernel), kernel == combine_choice, us, floor_us(combine_bytes));
    }
    for (ops::MoeCombineKernel kernel : {ops::MoeCombineKernel::kScan, ops::MoeCombineKernel::kRows}) {
      const double us = time([&](CallSet& cs) {
        ops::moe_combine_add_rms_norm_cuda({cs.expert_out, cs.grouping.sorted_pairs, weights, cs.shared_out},
                                           cs.residual, norm_weight, 1e-6f, cs.normed, stream, kernel);
      });
      report("combine_add_rms_norm", ops::combine_kernel_name(kernel), kernel == combine_choice, us,
             floor_us(norm_bytes));
    }
  }
  MLA_CUDA_CHECK(cudaStreamDestroy(stream));
  write_report(out_dir, "moe_dispatch", prop.name, command_line(argc, argv),
               {{"card", prop.name}, {"copy_gbps", copy_gbps}, {"reps", reps}, {"rows", rows}});
  return 0;
}

}  // namespace
}  // namespace mlaserve::bench

int main(int argc, char** argv) {
  return mlaserve::bench::run_program("moe_dispatch_bench", mlaserve::bench::run, argc, argv);
}
