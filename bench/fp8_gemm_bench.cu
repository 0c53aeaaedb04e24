// Benchmark of the dense block-scaled FP8 GEMM (ops/linear_fp8.h) at DeepSeek's projection
// shapes: our sm90 swap-AB kernel against cuBLASLt's block-scaled FP8 (BLK128x128 weights,
// VEC128 activations) on the same operands in the same run. A program, not a test: it prints a
// table and writes JSON.
//
//   fp8_gemm_bench [--out DIR] [--shapes PREFIX] [--tokens 1,8,64] [--all-splits]
//
// --shapes keeps the shapes whose name starts with PREFIX (e.g. v2l.), --tokens replaces the
// token counts (the large-M 16384 row is then left out), --all-splits times every split 1 .. 8 of
// both warpgroup counts beside the candidates (swap_ab_candidates). Each plan's JSON row has the
// clusters of its split the GPU holds at once (swap_ab_max_active_clusters) beside its tiles.
//
// Columns: swapAB = linear_fp8_w8a8_cuda(kSm90SwapAB); Lt = the cuBLASLt GEMM alone, its
// activation scales already group-major ([G, T], as the model's producers of FP8 activations
// write them: the norms, the SwiGLU quantiser, linear_fp8 on bf16 x); Lt+T = the library's
// cuBLASLt path on token-major scales, the scale transpose included (a caller with token-major
// scales only; at T % 4 != 0 cuBLASLt on T & ~3 rows and a GEMV on the rest, kCublasLtSplit); auto =
// what kAuto runs on the model's inputs (on its cuBLASLt path: Lt; Lt+gemv and 1grp timed so); fp8 path =
// linear_fp8 on bf16 activations as the model calls it (activation quantisation + auto);
// gemv = linear_fp8_w8a8_cuda(kGemv) on quantised x (T <= 4);
// mma = linear_fp8_w8a8_cuda(kGemvMma) on quantised x, the tensor-core GEMV at its default launch
// shape (T <= 8); mma+q = linear_fp8_cuda(kGemvMma) on bf16 x (it quantises inside, one launch);
// mma best / mma cfg = the fastest of kFp8GemvMmaConfigs on quantised x and its shape
// {ctas_per_sm, depth, tiles_per_cta}; swi2 / swi1 (the down projections, T <= 8) = an MLP's
// down on its gate_up rows [T, 2K] bf16: the two passes (silu_mul_quantize_fp8_cuda, then kAuto on
// its codes) and the one launch (silu_mul_linear_fp8_cuda(kGemvMma): the tensor-core GEMV
// quantising silu(gate)·up inside);
// bf16 = linear_cuda with a bf16 weight of the same shape (cuBLASLt, or its GEMV at T <= 8), the
// model's BF16 path, whose weight bytes are twice the e4m3 ones. Bytes: W + its
// scales + x + its scales + out (bf16), each once; the floor is bytes over the copy bandwidth
// (cudaMemcpyAsync of 1 GiB, read + write, measured in the same run); "of floor" is floor /
// time of the auto path, the fraction of the HBM floor reached (1.0 = at the floor). FLOPs
// 2·M·N·K; at large M the peer is cuBLASLt. read us = one streaming read of the weight's bytes by
// every SM (copy_bandwidth.h's stream_read, the faster of its two ways), timed the same way: what
// any kernel needs to bring the weight in, launch and ramp included; "of read" = read us / auto us.
//
// Timing: operands random (never zeros); as many weight copies as it takes to pass 256 MB
// (> 4x the L2), used in rotation; a CUDA graph of 10 calls is replayed, each replay timed with
// events; the median replay over 10 is the figure.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "bench_main.h"
#include "bench_report.h"
#include "bench_timing.h"
#include "copy_bandwidth.h"
#include "core/cuda_check.h"
#include "core/tensor.h"
#include "ops/cuda/cublaslt_gemm.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/linear_fp8_gemv.h"
#include "ops/cuda/linear_fp8_heuristics.h"
#include "ops/cuda/linear_fp8_sm90.h"
#include "ops/fp8_block.h"
#include "ops/fp8_quant.h"
#include "ops/linear.h"
#include "ops/linear_fp8.h"
#include "ops/random_fill.h"

namespace mlaserve::bench {
namespace {

using ops::sm90_fp8::swap_ab_plan_name;

constexpr double kRotateBytes = 256e6;
constexpr int kCalls = 10;

// Uniform(-448, 448) rounded to e4m3, on the host (12 random bits index a table of codes).
Tensor random_fp8(const Shape& shape, std::mt19937_64& rng) {
  static const std::vector<float8_e4m3> table = [] {
    std::vector<float8_e4m3> t(4096);
    for (int i = 0; i < 4096; ++i) t[i] = float_to_e4m3(((i + 0.5f) / 4096.0f * 2.0f - 1.0f) * 448.0f);
    return t;
  }();
  Tensor t = Tensor::empty(shape, DType::kF8E4M3);
  float8_e4m3* p = t.data<float8_e4m3>();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; i += 5) {
    uint64_t r = rng();
    for (int64_t j = i; j < std::min(n, i + 5); ++j, r >>= 12) p[j] = table[r & 4095];
  }
  return t;
}

Tensor random_scales(const Shape& shape, float center, std::mt19937_64& rng) {
  Tensor t = Tensor::empty(shape, DType::kF32);
  std::uniform_real_distribution<float> u(0.5f * center, 1.5f * center);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

struct Shape2 {
  const char* name;
  int64_t n, k;
  bool large_m;  // also at 16384 tokens
};

const std::vector<Shape2> kShapes = {
    {"v3.qkv_a_proj", 2112, 7168, true},   {"v3.q_a_proj", 1536, 7168, false},  {"v3.kv_a_proj", 576, 7168, false},
    {"v3.q_b_proj", 24576, 1536, false},   {"v3.kv_b_proj", 32768, 512, false}, {"v3.o_proj", 7168, 16384, true},
    {"v3.mlp_gate_up", 36864, 7168, true}, {"v3.mlp_down", 7168, 18432, false}, {"v3.shared_gate_up", 4096, 7168, false},
    {"v3.shared_down", 7168, 2048, false}, {"v2l.q_proj", 3072, 2048, false},   {"v2l.kv_a_proj", 576, 2048, false},
    {"v2l.o_proj", 2048, 2048, false},     {"v2l.shared_gate_up", 5632, 2048, false},
    {"v2l.kv_a_latent", 512, 2048, false}, {"v2l.kv_a_rope", 64, 2048, false},
    {"v2l.shared_down", 2048, 2816, false}, {"v2l.mlp_gate_up", 21888, 2048, false},
    {"v2l.mlp_down", 2048, 10944, false},
    // A V3 / R1 rank under TP8 (model/shard_plan.h: heads, the dense MLP and the shared experts cut
    // eight ways; qkv_a replicated, as above): the shapes V3 runs on H100s.
    {"v3tp8.q_b_proj", 3072, 1536, false},  {"v3tp8.kv_b_proj", 4096, 512, false},
    {"v3tp8.o_proj", 7168, 2048, false},    {"v3tp8.mlp_gate_up", 4608, 7168, false},
    {"v3tp8.mlp_down", 7168, 2304, false},  {"v3tp8.shared_gate_up", 512, 7168, false},
    {"v3tp8.shared_down", 7168, 256, false}};
const std::vector<int64_t> kTokens = {1, 8, 64, 128, 512, 4096};

struct PlanTime {
  ops::sm90_fp8::SwapAbPlan plan;
  double us;
  int clusters_held;  // swap_ab_max_active_clusters: clusters of plan.splits CTAs resident at once
};

struct Result {
  std::string name;
  int64_t m, n, k;
  double swap_ab_us, lt_us, lt_path_us, auto_us;  // lt_* 0 when cuBLASLt does not take the shape
  double fp8_path_us, bf16_us;                    // linear_fp8 on bf16 x; linear_cuda, bf16 weight
  double gemv_us;                                 // the GEMV on quantised x (0 past its T)
  double mma_us, mma_q_us, mma_best_us;           // the tensor-core GEMV (0 past its T)
  double swiglu_two_us, swiglu_one_us;            // the down on gate_up rows: two passes, one launch (or 0)
  std::string mma_best_cfg;
  std::string auto_kernel;  // Lt, gemv, mma or swap
  double bytes, flops, floor_us;
  double read_us;               // stream_read of the weight, the practical floor in this timing
  std::vector<PlanTime> plans;  // every swap-AB candidate at T <= 128, the default first
  double best_plan_us() const {
    double best = swap_ab_us;
    for (const PlanTime& p : plans) best = std::min(best, p.us);
    return best;
  }
};

// The weight of a shape in as many copies as the rotation needs (the same random values).
struct Weights {
  std::vector<Tensor> w;       // copies of [N, K] e4m3
  Tensor scales;               // [ceil(N/128), G]
  std::vector<Tensor> w_bf16;  // copies of [N, K] bf16 (the BF16 model's weight)
};

Weights make_weights(const Shape2& s) {
  std::mt19937_64 rng(static_cast<uint64_t>(s.n * 31 + s.k * 7));
  const double w_bytes = static_cast<double>(s.n) * s.k;
  const int copies = static_cast<int>(std::max(1.0, std::ceil(kRotateBytes / w_bytes)));
  const Tensor w_host = random_fp8({s.n, s.k}, rng);
  Weights w;
  for (int i = 0; i < copies; ++i) w.w.push_back(w_host.to(Device::kCUDA));
  w.scales = random_scales({ops::fp8_num_blocks(s.n), ops::fp8_num_blocks(s.k)}, 1e-4f, rng).to(Device::kCUDA);
  const int bf16_copies = static_cast<int>(std::max(1.0, std::ceil(kRotateBytes / (2.0 * w_bytes))));
  for (int i = 0; i < bf16_copies; ++i) {
    w.w_bf16.push_back(Tensor::empty({s.n, s.k}, DType::kBF16, Device::kCUDA));
    ops::fill_uniform_cuda(ops::UniformFill{static_cast<uint64_t>(i + 1), 0.05f, 0.0f}, w.w_bf16.back(), nullptr);
  }
  MLA_CUDA_CHECK(cudaDeviceSynchronize());
  return w;
}

// The plans timed at T <= 128: the candidates, and with all_splits every split of both warpgroup
// counts at the default token tile.
std::vector<ops::sm90_fp8::SwapAbPlan> plans_to_time(int64_t m, int64_t n, int64_t k, bool all_splits) {
  namespace f8 = ops::sm90_fp8;
  const f8::SwapAbGpu& gpu = f8::swap_ab_gpu();
  std::vector<f8::SwapAbPlan> plans = f8::swap_ab_candidates(m, n, k, gpu);
  if (!all_splits) return plans;
  for (int wgs : {1, 2}) {
    for (int64_t splits = 1; splits <= f8::kMaxSplits; ++splits) {
      const f8::SwapAbPlan p = f8::make_swap_ab_plan(m, n, k, gpu.sms, wgs, splits, f8::swap_ab_plan_bn(m, n, k));
      if (std::find(plans.begin(), plans.end(), p) == plans.end()) plans.push_back(p);
    }
  }
  return plans;
}

Result run_shape(const Shape2& s, const Weights& weights, int64_t m, double copy, bool all_splits,
                 cudaStream_t stream, Timer& timer) {
  std::mt19937_64 rng(static_cast<uint64_t>(s.n * 31 + s.k * 7 + m));
  const int64_t g = ops::fp8_num_blocks(s.k);
  const double w_bytes = static_cast<double>(s.n) * s.k;
  const std::vector<Tensor>& w = weights.w;
  const int copies = static_cast<int>(w.size());
  const Tensor& ws = weights.scales;
  std::vector<Tensor> x, xs, xs_t, out, x_bf16;
  for (int i = 0; i < 2; ++i) {
    x_bf16.push_back(Tensor::empty({m, s.k}, DType::kBF16, Device::kCUDA));  // [T, K]
    ops::fill_uniform_cuda(ops::UniformFill{static_cast<uint64_t>(100 + i), 2.0f, 0.0f}, x_bf16.back(), stream);
    x.push_back(random_fp8({m, s.k}, rng).to(Device::kCUDA));                     // [T, K]
    xs.push_back(random_scales({m, g}, 1e-2f, rng).to(Device::kCUDA));            // [T, G]
    xs_t.push_back(Tensor::empty({g, m}, DType::kF32, Device::kCUDA));            // [G, T]
    ops::transpose_fp8_act_scales_cuda(xs.back(), xs_t.back(), stream);
    out.push_back(Tensor::empty({m, s.n}, DType::kBF16, Device::kCUDA));          // [T, N]
  }
  const double flops = 2.0 * m * s.n * s.k;
  const double bytes = w_bytes + 4.0 * ops::fp8_num_blocks(s.n) * g + static_cast<double>(m) * s.k + 4.0 * m * g +
                       2.0 * m * s.n;
  const int replays = flops > 2e12 ? 5 : 10;
  auto call = [&](ops::Fp8GemmKernel kernel) {
    return [&, kernel](int i) {
      ops::linear_fp8_w8a8_cuda(x[i % 2], xs[i % 2], w[i % copies], ws, out[i % 2], stream, kernel);
    };
  };
  Result r{s.name, m, s.n, s.k, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, "-", "-", bytes, flops, bytes / copy / 1e3, 0};
  r.swap_ab_us = timer.graph_us(stream, kCalls, replays, call(ops::Fp8GemmKernel::kSm90SwapAB));
  const auto read_us = [&](ReadWay way) {
    return timer.graph_us(stream, kCalls, replays,
                          [&](int i) { stream_read(w[i % copies].raw(), s.n * s.k, way, stream); });
  };
  r.read_us = std::min(read_us(ReadWay::kLoads), read_us(ReadWay::kBulk));
  if (ops::sm90_fp8::cublaslt_fp8_fits(m, s.n, s.k)) {
    r.lt_us = timer.graph_us(stream, kCalls, replays, [&](int i) {
      ops::cuda::GemmProblem p;
      p.m = m;
      p.n = s.n;
      p.k = s.k;
      p.ab_dtype = DType::kF8E4M3;
      p.d_dtype = DType::kBF16;
      p.a = {x[i % 2].raw(), s.k, 0};
      p.b = {w[i % copies].raw(), s.k, 0};
      p.d = out[i % 2].raw();
      p.d_row_stride = s.n;
      p.fp8_scales = {static_cast<const float*>(xs_t[i % 2].raw()), static_cast<const float*>(ws.raw())};
      ops::cuda::lt_gemm(p, stream);
    });
    r.lt_path_us = timer.graph_us(stream, kCalls, replays, call(ops::Fp8GemmKernel::kCublasLt));
  } else if (ops::sm90_fp8::cublaslt_split_fits(m, s.n, s.k)) {  // T & ~3 rows, a GEMV on the rest
    r.lt_path_us = timer.graph_us(stream, kCalls, replays, call(ops::Fp8GemmKernel::kCublasLt));
  }
  if (m <= ops::sm90_fp8::kSwapAbMaxTokens) {
    for (const ops::sm90_fp8::SwapAbPlan& plan : plans_to_time(m, s.n, s.k, all_splits)) {
      const double us = timer.graph_us(stream, kCalls, replays, [&](int i) {
        ops::sm90_fp8::run_swap_ab({x[i % 2].raw(), static_cast<const float*>(xs[i % 2].raw()), w[i % copies].raw(),
                                    static_cast<const float*>(ws.raw()), out[i % 2].raw()},
                                   m, s.n, s.k, plan, stream);
      });
      r.plans.push_back({plan, us, ops::sm90_fp8::swap_ab_max_active_clusters(plan)});
    }
  }
  if (ops::sm90_fp8::fp8_gemv_fits(m, s.k)) r.gemv_us = timer.graph_us(stream, kCalls, replays, call(ops::Fp8GemmKernel::kGemv));
  const ops::ActQuantParams act{};
  if (ops::sm90_fp8::fp8_gemv_mma_fits(m, s.k)) {
    r.mma_us = timer.graph_us(stream, kCalls, replays, call(ops::Fp8GemmKernel::kGemvMma));
    r.mma_q_us = timer.graph_us(stream, kCalls, replays, [&](int i) {
      ops::linear_fp8_cuda(x_bf16[i % 2], w[i % copies], ws, act, out[i % 2], stream, ops::Fp8GemmKernel::kGemvMma);
    });
    r.mma_best_us = r.mma_us;
    r.mma_best_cfg = "default";
    for (const ops::gpu::GemvMmaConfig& c : ops::sm90_fp8::kFp8GemvMmaConfigs) {
      const double us = timer.graph_us(stream, kCalls, replays, [&](int i) {
        ops::sm90_fp8::run_fp8_gemv_mma({x[i % 2].raw(), static_cast<const float*>(xs[i % 2].raw()),
                                         w[i % copies].raw(), static_cast<const float*>(ws.raw()), out[i % 2].raw()},
                                        m, s.n, s.k, ops::sm90_fp8::Fp8GemvInput::kCodes, act, stream, c);
      });
      if (us < r.mma_best_us) {
        r.mma_best_us = us;
        r.mma_best_cfg = std::to_string(c.ctas_per_sm) + "," + std::to_string(c.depth) + "," +
                         std::to_string(c.tiles_per_cta);
      }
    }
  }
  const std::string_view name = s.name;
  if (name.size() > 5 && name.substr(name.size() - 5) == "_down" && m <= ops::sm90_fp8::kGemvMmaMaxTokens) {
    std::vector<Tensor> gate_up;  // [T, 2K]
    for (int i = 0; i < 2; ++i) {
      gate_up.push_back(Tensor::empty({m, 2 * s.k}, DType::kBF16, Device::kCUDA));
      ops::fill_uniform_cuda(ops::UniformFill{static_cast<uint64_t>(200 + i), 2.0f, 0.0f}, gate_up.back(), stream);
    }
    ops::Fp8Activations h{Tensor::empty({m, s.k}, DType::kF8E4M3, Device::kCUDA),
                          Tensor::empty({m, g}, DType::kF32, Device::kCUDA),
                          Tensor::empty({g, m}, DType::kF32, Device::kCUDA)};
    r.swiglu_two_us = timer.graph_us(stream, kCalls, replays, [&](int i) {
      ops::silu_mul_quantize_fp8_cuda(gate_up[i % 2], act, h, stream);
      ops::linear_fp8_w8a8_cuda(h, w[i % copies], ws, out[i % 2], stream);
    });
    if (ops::sm90_fp8::fp8_gemv_mma_fits(m, s.k, ops::sm90_fp8::Fp8GemvInput::kSwiGlu)) {
      r.swiglu_one_us = timer.graph_us(stream, kCalls, replays, [&](int i) {
        ops::silu_mul_linear_fp8_cuda(gate_up[i % 2], w[i % copies], ws, act, out[i % 2], stream,
                                      ops::Fp8GemmKernel::kGemvMma);
      });
    }
  }
  r.fp8_path_us = timer.graph_us(stream, kCalls, replays, [&](int i) {
    ops::linear_fp8_cuda(x_bf16[i % 2], w[i % copies], ws, act, out[i % 2], stream);
  });
  const auto bf16_copies = static_cast<int>(weights.w_bf16.size());
  r.bf16_us = timer.graph_us(stream, kCalls, replays, [&](int i) {
    ops::linear_cuda(x_bf16[i % 2], weights.w_bf16[i % bf16_copies], out[i % 2], stream);
  });
  // kAuto on quantised x (linear_fp8_cuda.cc's choose_path; the shapes here are aligned and fit), with
  // the scales as the model's producers hand them over (Fp8Activations::scales_t on the cuBLASLt path)
  namespace f8 = ops::sm90_fp8;
  const f8::Fp8GemmPath auto_path = f8::use_gemv_mma(m, s.k, /*x_quantized=*/true)
                                        ? f8::Fp8GemmPath::kGemvMma
                                        : f8::choose_fp8_gemm(m, s.n, s.k, f8::swap_ab_gpu());
  switch (auto_path) {
    case ops::sm90_fp8::Fp8GemmPath::kCublasLt: r.auto_kernel = "Lt", r.auto_us = r.lt_us; break;
    case ops::sm90_fp8::Fp8GemmPath::kGemv: r.auto_kernel = "gemv", r.auto_us = r.gemv_us; break;
    case ops::sm90_fp8::Fp8GemmPath::kGemvMma: r.auto_kernel = "mma", r.auto_us = r.mma_us; break;
    case ops::sm90_fp8::Fp8GemmPath::kSwapAB: r.auto_kernel = "swap", r.auto_us = r.swap_ab_us; break;
    case ops::sm90_fp8::Fp8GemmPath::kCublasLtSplit: r.auto_kernel = "Lt+gemv", r.auto_us = r.lt_path_us; break;
    case ops::sm90_fp8::Fp8GemmPath::kOneGroup:
      r.auto_kernel = "1grp";
      r.auto_us = timer.graph_us(stream, kCalls, replays, call(ops::Fp8GemmKernel::kOneGroup));
      break;
  }
  MLA_CUDA_CHECK(cudaStreamSynchronize(stream));
  const std::vector<float> check = out[0].slice(0, 1).to(Device::kCPU).to_vector();
  for (float v : check) MLA_CHECK(std::isfinite(v), "{} at M {}: non-finite output {}", s.name, m, v);
  return r;
}

int run(int argc, char** argv) {
  std::string out_dir = "bench/results", prefix;
  std::vector<int64_t> tokens = kTokens;
  bool own_tokens = false, all_splits = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) {
      out_dir = argv[++i];
    } else if (a == "--shapes" && i + 1 < argc) {
      prefix = argv[++i];
    } else if (a == "--tokens" && i + 1 < argc) {
      own_tokens = true;
      tokens = parse_int_list(argv[++i]);
    } else if (a == "--all-splits") {
      all_splits = true;
    } else {
      std::fprintf(stderr, "usage: %s [--out DIR] [--shapes PREFIX] [--tokens 1,8,64] [--all-splits]\n", argv[0]);
      return 2;
    }
  }
  cudaDeviceProp prop{};
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  Timer timer;
  const double copy = memcpy_gbps(stream);

  std::vector<Result> results;
  for (const Shape2& s : kShapes) {
    if (std::string(s.name).rfind(prefix, 0) != 0) continue;
    const Weights weights = make_weights(s);
    std::vector<int64_t> ms = tokens;
    if (s.large_m && !own_tokens) ms.push_back(16384);
    for (int64_t m : ms) {
      results.push_back(run_shape(s, weights, m, copy, all_splits, stream, timer));
      const Result& r = results.back();
      std::fprintf(stderr, "  %s M %ld: swapAB %.1f us, Lt %.1f us\n", r.name.c_str(), r.m, r.swap_ab_us, r.lt_us);
    }
  }

  std::printf("card: %s, %d SMs, L2 %d MB; copy %.0f GB/s (memcpy, read + write)\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, copy);
  std::printf("\nout[M,N] bf16 = x_q[M,K] w_q[N,K]^T, e4m3 with 1x128 / 128x128 fp32 block scales (graph replays)\n");
  std::printf("%-18s %5s %6s %6s %9s %9s %9s %9s %5s %8s %7s %8s %8s %8s %8s %8s %9s %-18s %9s %9s %9s %9s %9s %9s "
              "%9s %-8s %8s %8s\n",
              "shape", "M", "N", "K", "swapAB us", "Lt us", "Lt+T us", "auto us", "auto", "TFLOPS", "GB/s", "floor us",
              "of floor", "read us", "of read", "Lt/swapAB", "best us", "best plan", "fp8path", "bf16 us", "bf16/fp8",
              "gemv us", "mma us", "mma+q us", "mma best", "mma cfg", "swi2 us", "swi1 us");
  nlohmann::json rows = nlohmann::json::array();
  for (const Result& r : results) {
    std::string best_plan = r.plans.empty() ? "-" : swap_ab_plan_name(r.plans[0].plan);
    for (const PlanTime& p : r.plans) {
      if (p.us == r.best_plan_us()) best_plan = swap_ab_plan_name(p.plan);
    }
    std::printf("%-18s %5ld %6ld %6ld %9.1f %9.1f %9.1f %9.1f %5s %8.1f %7.0f %8.1f %8.2f %8.1f %8.2f %8.2f %9.1f "
                "%-18s %9.1f %9.1f %9.2f %9.1f %9.1f %9.1f %9.1f %-8s %8.1f %8.1f\n",
                r.name.c_str(), r.m, r.n, r.k, r.swap_ab_us, r.lt_us, r.lt_path_us, r.auto_us,
                r.auto_kernel.c_str(), r.flops / r.auto_us / 1e6, r.bytes / r.auto_us / 1e3, r.floor_us,
                r.floor_us / r.auto_us, r.read_us, r.read_us / r.auto_us, r.lt_us > 0 ? r.lt_us / r.swap_ab_us : 0.0,
                r.best_plan_us(), best_plan.c_str(), r.fp8_path_us, r.bf16_us, r.bf16_us / r.fp8_path_us, r.gemv_us,
                r.mma_us, r.mma_q_us, r.mma_best_us, r.mma_best_cfg.c_str(), r.swiglu_two_us, r.swiglu_one_us);
    nlohmann::json plan_rows = nlohmann::json::array();
    for (const PlanTime& p : r.plans) {
      plan_rows.push_back({{"plan", swap_ab_plan_name(p.plan)},
                           {"us", p.us},
                           {"tiles", ops::sm90_fp8::swap_ab_tiles(p.plan)},
                           {"clusters_held", p.clusters_held}});
    }
    rows.push_back({{"shape", r.name},
                    {"m", r.m},
                    {"n", r.n},
                    {"k", r.k},
                    {"swap_ab_us", r.swap_ab_us},
                    {"cublaslt_us", r.lt_us},
                    {"cublaslt_with_transpose_us", r.lt_path_us},
                    {"auto_us", r.auto_us},
                    {"fp8_path_us", r.fp8_path_us},
                    {"gemv_us", r.gemv_us},
                    {"gemv_mma_us", r.mma_us},
                    {"gemv_mma_quantize_us", r.mma_q_us},
                    {"gemv_mma_best_us", r.mma_best_us},
                    {"gemv_mma_best_config", r.mma_best_cfg},
                    {"swiglu_down_two_pass_us", r.swiglu_two_us},
                    {"swiglu_down_one_launch_us", r.swiglu_one_us},
                    {"bf16_us", r.bf16_us},
                    {"auto_kernel", r.auto_kernel},
                    {"bytes", r.bytes},
                    {"flops", r.flops},
                    {"floor_us", r.floor_us},
                    {"read_us", r.read_us},
                    {"swap_ab_tflops", r.flops / r.swap_ab_us / 1e6},
                    {"cublaslt_tflops", r.lt_us > 0 ? r.flops / r.lt_us / 1e6 : 0.0},
                    {"swap_ab_fraction_of_floor", r.floor_us / r.swap_ab_us},
                    {"swap_ab_plans", plan_rows}});
  }

  write_report(out_dir, "fp8_gemm", prop.name, command_line(argc, argv),
               {{"card", prop.name},
                {"sms", prop.multiProcessorCount},
                {"hbm_gbps_peak", ops::sm90_fp8::swap_ab_gpu().hbm_gbps},  // what splits_pay weighs
                {"copy_gbps_memcpy", copy},
                {"rows", rows}});
  MLA_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}

}  // namespace
}  // namespace mlaserve::bench

int main(int argc, char** argv) {
  return mlaserve::bench::run_program("fp8_gemm_bench", mlaserve::bench::run, argc, argv);
}
