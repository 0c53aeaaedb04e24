// The grouped block-FP8 MoE GEMM (moe_grouped_gemm_fp8_cuda) and the FP8 expert layer on the GPU.
//
//   1. grouped GEMM at the target shape, 4 experts x 8192 rows, N 4096, K 7168 (plain epilogue):
//      our kernels (mma.sync, Hopper wgmma with 128- and 256-row weight tiles) and CUTLASS's
//      grouped blockwise kernel (moe_grouped_gemm_fp8_cutlass.h: cooperative 128x128, default walk,
//      then the best of its 8 walks: raster M/N x swizzle 1/2/4/8) against the best
//      peer on the card for the same work, the dense block-scaled FP8 GEMM (linear_fp8_w8a8_cuda,
//      cuBLASLt BLK128x128 and the sm90 kernel, whichever kAuto picks) launched once per expert,
//      and the floor: the tensor cores' dense FP8 peak (kFp8PeakTflops). TFLOPS = 2·P·N·K / time.
//   2. the grouped GEMMs of real MoE layers (V3: E 256, H 7168, Im 2048; V2-Lite: E 64, H 2048,
//      Im 1408), gate_up (SwiGLU epilogue) and down, uniform routing (or random top-k:
//      --shape-routing), at 16 .. 1536 rows per expert: every kernel (CUTLASS's cooperative on down
//      only: no SwiGLU epilogue), what kAuto picks, and the floor (the FP8 peak or the bytes at the
//      copy bandwidth, whichever is longer: at a few hundred rows per expert the weights dominate).
//   2b. the same layers' grouped BF16 GEMMs (moe_grouped_gemm_cuda), uniform routing, T = 256 ..
//      16384 tokens (V3: 8 .. 512 rows per expert, V2-Lite: 24 .. 1536): the Hopper wgmma kernel
//      (MoeBf16Kernel::kWgmma, SwiGLU fused into gate_up's epilogue; "m192": the same kernel with
//      192 x 128 tiles, kWgmmaM192) against CUTLASS's grouped kernel (kCutlassGrouped: gate_up as
//      the [P, 2·Im] product, then silu_mul_rows_cuda; the two parts are also timed alone), what
//      kAuto runs, and the floor (the BF16 dense peak or the bytes at the copy bandwidth, whichever
//      is longer). TFLOPS = 2·P·R·K / time, R the weight rows (2·Im for gate_up), for every column.
//   3. a V3 and a V2-Lite MoE layer (V3: 256 experts, H 7168, Im 2048, top-8; V2-Lite: 64, 2048,
//      1408, top-6; and a V3 TP8 rank's channel share of every expert, --expert-split channels: Im
//      256; uniform routing over the experts):
//      moe_experts_fp8_cuda (two quantisations, two grouped GEMMs) against moe_experts_cuda
//      (BF16), decode token counts against the HBM floor of the active experts' weights (e4m3
//      bytes / measured copy bandwidth), prefill counts in TFLOPS. (These rows run what kAuto
//      picks: use_moe_gemv, moe_experts_gemv_heuristics.h.) Then the decode sizes (V3 1-8, V2-Lite 1-16
//      tokens) through each path forced (MoeExpertsPath: the grouped GEMV of moe_experts_gemv.cuh
//      and the grouped GEMMs, BF16 and FP8 experts): random routings (each token to top-k distinct
//      experts), several per token count so that the weights the timed runs read exceed the L2
//      several times over (run i takes routing i mod sets); us, the active experts' weight bytes
//      per us (GB/s) and the floor (those bytes at the copy bandwidth). The GEMV runs once with
//      the dispatch's launch shape ("gemv") and once with each of kGemvSweep (kMoeGemvConfigs of
//      moe_experts_gemv_heuristics.h and shorter runs; "gemv c2 d4 t0": CTAs an SM, ring depth,
//      tiles a CTA), so one run sweeps its knobs.
// Inputs random; times are medians of 20 runs after 3 warm-ups (CUDA events, eager launches).
// Every other working set here exceeds the 50 MB L2 (weights of 117 MB and up), so no flush is
// needed.
//
//   moe_fp8_bench [--out DIR] [--sections gemm,shapes,bf16-shapes,layers,v2l-layer,channels-layer]
//                 [--shape-tokens T,...] [--shape-routing uniform|random]
//
// --sections picks parts 1 (gemm), 2 (shapes), 2b (bf16-shapes; not run by default), 3 (layers;
// v2l-layer: only V2-Lite's, channels-layer: only the channel share); --shape-tokens replaces
// part 2's token counts (both models), e.g. to profile one shape.
#include <cuda_runtime_api.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
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
#include "ops/fp8_block.h"
#include "ops/linear_fp8.h"
#include "ops/cuda/moe_experts_gemv.h"
#include "ops/cuda/moe_grouped_gemm_fp8_cutlass.h"
#include "ops/cuda/moe_grouped_gemm_fp8_sm90.h"
#include "ops/moe_experts.h"
#include "ops/random_fill.h"
#include "ops/silu_mul.h"

namespace mlaserve::bench {
namespace {

constexpr int kWarmup = 3, kReps = 20;
// Weight bytes (BF16) the routings of one decode-size row read together: 10x the H200's 50 MB L2.
constexpr double kRotateBytes = 512e6;
// Dense FP8 tensor-core peak of an H100 / H200 SXM (datasheet, without sparsity): the floor of a
// compute-bound GEMM. Other cards: the ratio column is then only indicative.
constexpr double kFp8PeakTflops = 1979.0;
// Dense BF16 tensor-core peak of the same cards (datasheet, without sparsity).
constexpr double kBf16PeakTflops = 989.0;

// The grouped GEMV's launch shapes timed at decode sizes: every one of kMoeGemvConfigs
// (moe_experts_gemv_heuristics.h) and shorter runs of tiles (the grid grows, the slots of experts
// with no rows cost less of the card).
const std::vector<ops::gpu::MoeGemvConfig> kGemvSweep = [] {
  using ops::gpu::MoeGemvConfig;
  std::vector<MoeGemvConfig> v(std::begin(ops::gpu::kMoeGemvConfigs), std::end(ops::gpu::kMoeGemvConfigs));
  for (const MoeGemvConfig c : {MoeGemvConfig{1, 4, 2}, {1, 4, 4}, {1, 2, 4}, {1, 2, 8}, {1, 8, 8}}) v.push_back(c);
  return v;
}();

Tensor random_bf16(const Shape& shape, uint64_t seed, cudaStream_t stream) {
  Tensor t = Tensor::empty(shape, DType::kBF16, Device::kCUDA);
  ops::fill_uniform_cuda(ops::UniformFill{seed, 1.0f, 0.0f}, t, stream);
  return t;
}

// Random bf16 [rows, cols] quantised to block FP8 on the GPU.
void random_fp8(const Shape& shape, uint64_t seed, Tensor& q, Tensor& s, cudaStream_t stream) {
  const int64_t cols = shape.back(), rows = shape_numel(shape) / cols;
  Tensor w = random_bf16({rows, cols}, seed, stream);
  q = Tensor::empty({rows, cols}, DType::kF8E4M3, Device::kCUDA);
  s = Tensor::empty({ops::fp8_num_blocks(rows), ops::fp8_num_blocks(cols)}, DType::kF32, Device::kCUDA);
  ops::quantize_weight_block_fp8_cuda(w, q, s, stream);
  MLA_CUDA_CHECK(cudaStreamSynchronize(stream));
}

template <class Fn>
double time_us(Timer& timer, cudaStream_t stream, Fn fn) {
  for (int i = 0; i < kWarmup; ++i) fn(i);
  return timer.median_us(stream, kReps, fn);
}

// Part 2b (the note at the top): one row per model, token count and GEMM; returns the JSON rows.
nlohmann::json bf16_shapes(Timer& timer, cudaStream_t stream, double copy) {
  struct Model {
    const char* name;
    int64_t experts, hidden, inter, top_k;
  };
  const int64_t token_counts[] = {256, 512, 1024, 1400, 1600, 2048, 4096, 4800, 6144, 8192, 16384};
  nlohmann::json out_rows = nlohmann::json::array();
  std::printf("\ngrouped BF16 GEMMs of MoE layers, uniform routing; wgmma (SwiGLU fused; m192: its 192 x 128 "
              "tiles) and CUTLASS grouped (gate_up: GEMM [P, 2Im] + silu_mul, also timed apart); floor = max(BF16 "
              "peak, bytes / copy bandwidth); auto = what kAuto runs\n");
  std::printf("%-8s %-8s %6s %7s %6s %9s %7s %9s %7s %9s %7s %9s %8s %9s %9s %7s\n", "model", "gemm", "tokens", "rows",
              "mean", "wgmma us", "TFLOPS", "m192 us", "TFLOPS", "cutl us", "TFLOPS", "cutl gemm", "silu us", "auto us",
              "floor us", "wg/cutl");
  for (const Model& md : {Model{"v3", 256, 7168, 2048, 8}, Model{"v2-lite", 64, 2048, 1408, 6}}) {
    const Tensor gate_up = random_bf16({md.experts, 2 * md.inter, md.hidden}, 21, stream);  // [E, 2·Im, H]
    const Tensor down = random_bf16({md.experts, md.hidden, md.inter}, 22, stream);         // [E, H, Im]
    for (const int64_t t : token_counts) {
      const int64_t rows = t * md.top_k;
      Tensor off_host = Tensor::empty({md.experts + 1}, DType::kI32);  // uniform: expert i from i·P/E
      int32_t* off = off_host.data<int32_t>();
      for (int64_t i = 0; i <= md.experts; ++i) off[i] = static_cast<int32_t>(i * rows / md.experts);
      const Tensor offsets = off_host.to(Device::kCUDA);  // [E + 1]
      for (const bool swiglu : {true, false}) {
        const int64_t k = swiglu ? md.hidden : md.inter, n_out = swiglu ? md.inter : md.hidden;
        const int64_t w_rows = swiglu ? 2 * md.inter : md.hidden;
        const Tensor& b = swiglu ? gate_up : down;
        const Tensor a = random_bf16({rows, k}, 23, stream);                      // [P, K]
        Tensor out = Tensor::empty({rows, n_out}, DType::kBF16, Device::kCUDA);  // [P, N]
        auto time_kernel = [&](ops::MoeBf16Kernel kernel) {
          return time_us(timer, stream,
                         [&](int) { ops::moe_grouped_gemm_cuda(a, offsets, b, swiglu, out, stream, kernel); });
        };
        const double wgmma = time_kernel(ops::MoeBf16Kernel::kWgmma);
        const double m192 = time_kernel(ops::MoeBf16Kernel::kWgmmaM192);
        const double cutl = time_kernel(ops::MoeBf16Kernel::kCutlassGrouped);
        const double picked = time_kernel(ops::MoeBf16Kernel::kAuto);
        // CUTLASS's gate_up in its two parts (0 for down): the product alone, silu_mul on it.
        double cutl_gemm = 0.0, silu = 0.0;
        if (swiglu) {
          Tensor gu = Tensor::empty({rows, w_rows}, DType::kBF16, Device::kCUDA);  // [P, 2·Im]
          cutl_gemm = time_us(timer, stream, [&](int) {
            ops::moe_grouped_gemm_cuda(a, offsets, b, /*swiglu=*/false, gu, stream,
                                       ops::MoeBf16Kernel::kCutlassGrouped);
          });
          silu = time_us(timer, stream, [&](int) { ops::silu_mul_rows_cuda(gu, offsets, out, stream); });
        }
        const double flops = 2.0 * rows * w_rows * k;
        // Floor: the peak, or every expert's weights once plus A and out at the copy bandwidth.
        const double bytes = 2.0 * (static_cast<double>(md.experts) * w_rows * k + rows * (k + n_out));
        const double floor = std::max(flops / kBf16PeakTflops / 1e6, bytes / copy / 1e3);
        const int64_t mean = rows / std::min(md.experts, rows);
        std::printf("%-8s %-8s %6ld %7ld %6ld %9.1f %7.1f %9.1f %7.1f %9.1f %7.1f %9.1f %8.1f %9.1f %9.1f %7.2f\n",
                    md.name, swiglu ? "gate_up" : "down", t, rows, mean, wgmma, flops / wgmma / 1e6, m192,
                    flops / m192 / 1e6, cutl, flops / cutl / 1e6, cutl_gemm, silu, picked, floor, wgmma / cutl);
        nlohmann::json row = {{"model", md.name},      {"gemm", swiglu ? "gate_up" : "down"},
                              {"tokens", t},           {"rows", rows},
                              {"experts", md.experts}, {"k", k},
                              {"weight_rows", w_rows}, {"wgmma_us", wgmma},
                              {"wgmma_tflops", flops / wgmma / 1e6}, {"m192_us", m192},
                              {"m192_tflops", flops / m192 / 1e6}, {"cutlass_us", cutl},
                              {"cutlass_tflops", flops / cutl / 1e6}, {"auto_us", picked},
                              {"floor_us", floor}};
        if (swiglu) {
          row["cutlass_gemm_us"] = cutl_gemm;
          row["silu_mul_us"] = silu;
        }
        out_rows.push_back(std::move(row));
      }
    }
  }
  return out_rows;
}

int run(int argc, char** argv) {
  std::string out_dir = "bench/results", sections = "gemm,shapes,layers";
  std::vector<int64_t> shape_tokens;  // --shape-tokens: part 2's token counts for both models
  bool random_routing = false;        // --shape-routing random: part 2's routing
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) {
      out_dir = argv[++i];
    } else if (a == "--sections" && i + 1 < argc) {
      sections = argv[++i];
    } else if (a == "--shape-tokens" && i + 1 < argc) {
      shape_tokens = parse_int_list(argv[++i]);
    } else if (a == "--shape-routing" && i + 1 < argc && (std::string(argv[i + 1]) == "uniform" ||
                                                           std::string(argv[i + 1]) == "random")) {
      random_routing = std::string(argv[++i]) == "random";
    } else {
      std::fprintf(stderr,
                   "usage: %s [--out DIR] [--sections gemm,shapes,bf16-shapes,layers,v2l-layer,channels-layer] "
                   "[--shape-tokens T,...] [--shape-routing uniform|random]\n",
                   argv[0]);
      return 2;
    }
  }
  auto section = [&](const char* name) {
    return ("," + sections + ",").find("," + std::string(name) + ",") != std::string::npos;
  };
  cudaDeviceProp prop{};
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  Timer timer;
  const double copy = memcpy_gbps(stream);
  std::printf("card: %s, %d SMs; copy %.0f GB/s (read + write)\n", prop.name, prop.multiProcessorCount, copy);

  // 1. The target grouped GEMM.
  nlohmann::json gemm_rows = nlohmann::json::array();
  if (section("gemm")) {
    const int64_t groups = 4, m = 8192, n = 4096, k = 7168, rows = groups * m;
    Tensor a_q, a_s, b_q, b_s;
    {
      Tensor x = random_bf16({rows, k}, 1, stream);
      a_q = Tensor::empty({rows, k}, DType::kF8E4M3, Device::kCUDA);
      a_s = Tensor::empty({rows, k / 128}, DType::kF32, Device::kCUDA);
      ops::quantize_activations_fp8_cuda(x, ops::ActQuantParams{}, a_q, a_s, stream);
    }
    random_fp8({groups * n, k}, 2, b_q, b_s, stream);
    b_q = b_q.reshape({groups, n, k});
    b_s = b_s.reshape({groups, n / 128, k / 128});
    std::vector<int32_t> off;
    for (int64_t g = 0; g <= groups; ++g) off.push_back(static_cast<int32_t>(g * m));
    Tensor off_host = Tensor::empty({groups + 1}, DType::kI32);
    std::copy(off.begin(), off.end(), off_host.data<int32_t>());
    const Tensor offsets = off_host.to(Device::kCUDA);
    Tensor out = Tensor::empty({rows, n}, DType::kBF16, Device::kCUDA);
    const double flops = 2.0 * rows * n * k;
    const double mma = time_us(timer, stream, [&](int) {
      ops::moe_grouped_gemm_fp8_cuda(a_q, a_s, offsets, b_q, b_s, false, out, stream, ops::MoeFp8Kernel::kMmaSync);
    });
    const double wgmma128 = time_us(timer, stream, [&](int) {
      ops::moe_grouped_gemm_fp8_cuda(a_q, a_s, offsets, b_q, b_s, false, out, stream, ops::MoeFp8Kernel::kWgmmaN128);
    });
    const double wgmma256 = time_us(timer, stream, [&](int) {
      ops::moe_grouped_gemm_fp8_cuda(a_q, a_s, offsets, b_q, b_s, false, out, stream, ops::MoeFp8Kernel::kWgmmaN256);
    });
    const double cutlass_coop = time_us(timer, stream, [&](int) {
      ops::moe_grouped_gemm_fp8_cuda(a_q, a_s, offsets, b_q, b_s, false, out, stream,
                                     ops::MoeFp8Kernel::kCutlassGrouped);
    });
    // CUTLASS's walks over the tiles (run-time options): the best of 8.
    namespace cg = ops::sm90::cutlass_grouped;
    ops::sm89::MoeFp8GemmParams gp{};
    gp.a = static_cast<const uint8_t*>(a_q.raw());
    gp.a_scales = a_s.data<float>();
    gp.b = static_cast<const uint8_t*>(b_q.raw());
    gp.b_scales = b_s.data<float>();
    gp.out = static_cast<__nv_bfloat16*>(out.raw());
    gp.expert_offsets = offsets.data<int32_t>();
    gp.num_rows = static_cast<int32_t>(rows);
    gp.num_experts = static_cast<int32_t>(groups);
    gp.k = static_cast<int32_t>(k);
    gp.b_rows = static_cast<int32_t>(n);
    gp.n_out = static_cast<int32_t>(n);
    struct Walk {
      double us;
      cg::Options options;
    };
    Walk best{1e30, {}};
    for (const cg::Raster raster : {cg::Raster::kAlongM, cg::Raster::kAlongN}) {
      for (const int swizzle : {1, 2, 4, 8}) {
        const cg::Options options{swizzle, raster};
        const double us = time_us(timer, stream, [&](int) {
          ops::sm90::moe_fp8_cutlass::moe_grouped_gemm_fp8_cutlass(gp, options, stream);
        });
        if (us < best.us) best = {us, options};
      }
    }
    auto walk_name = [](const cg::Options& o) {
      return std::string(o.raster == cg::Raster::kAlongN ? "N" : "M") + " swizzle " + std::to_string(o.max_swizzle);
    };
    const double peer = time_us(timer, stream, [&](int) {
      for (int64_t g = 0; g < groups; ++g) {
        Tensor o = out.slice(g * m, (g + 1) * m);
        ops::linear_fp8_w8a8_cuda(a_q.slice(g * m, (g + 1) * m), a_s.slice(g * m, (g + 1) * m),
                                  b_q.slice(g, g + 1).reshape({n, k}), b_s.slice(g, g + 1).reshape({n / 128, k / 128}),
                                  o, stream);
      }
    });
    std::printf("\ngrouped FP8 GEMM, %ld groups x %ld rows, N %ld, K %ld\n", groups, m, n, k);
    const double floor = flops / kFp8PeakTflops / 1e6;
    std::printf("%-44s %10s %8s %8s %8s\n", "kernel", "us", "TFLOPS", "of peak", "peer/us");
    const std::string coop_best = "cutlass grouped coop, best (" + walk_name(best.options) + ")";
    for (const auto& [name, us] : {std::pair<std::string, double>{"moe_grouped_gemm_fp8 (mma.sync)", mma},
                                   {"moe_grouped_gemm_fp8 (wgmma n128)", wgmma128},
                                   {"moe_grouped_gemm_fp8 (wgmma n256)", wgmma256},
                                   {"cutlass grouped coop 128x128 (kCutlassGrouped)", cutlass_coop},
                                   {coop_best, best.us},
                                   {"linear_fp8_w8a8 x4 (peer)", peer},
                                   {"floor (FP8 dense peak)", floor}}) {
      std::printf("%-44s %10.1f %8.1f %8.2f %8.2f\n", name.c_str(), us, flops / us / 1e6, floor / us, peer / us);
    }
    gemm_rows.push_back({{"groups", groups}, {"m", m}, {"n", n}, {"k", k}, {"mma_sync_us", mma},
                         {"mma_sync_tflops", flops / mma / 1e6}, {"wgmma_n128_us", wgmma128},
                         {"wgmma_n128_tflops", flops / wgmma128 / 1e6}, {"wgmma_n256_us", wgmma256},
                         {"wgmma_n256_tflops", flops / wgmma256 / 1e6}, {"cutlass_coop_us", cutlass_coop},
                         {"cutlass_coop_tflops", flops / cutlass_coop / 1e6},
                         {"cutlass_coop_best_us", best.us}, {"cutlass_coop_best_walk", walk_name(best.options)},
                         {"peer_dense_x4_us", peer},
                         {"peer_tflops", flops / peer / 1e6}, {"floor_us", floor}});
  }

  // 2. The grouped GEMMs of real MoE layers.
  nlohmann::json shape_rows = nlohmann::json::array();
  if (section("shapes")) {
    struct Model {
      const char* name;
      int64_t experts, hidden, inter, top_k;
      std::vector<int64_t> tokens;
    };
    // V3 6144 (192 rows an expert) and V2-Lite 1600 (150) end each expert with a tile of <= 64 rows;
    // 1600 is about the mean step of the throughput benchmark.
    Model models[] = {{"v3", 256, 7168, 2048, 8, {512, 768, 1024, 2048, 4096, 6144, 16384}},
                      {"v2-lite", 64, 2048, 1408, 6, {1, 64, 128, 256, 512, 1024, 1600, 2400, 4096, 16384}}};
    if (!shape_tokens.empty()) {
      for (Model& md : models) md.tokens = shape_tokens;
    }
    std::printf("\ngrouped GEMMs of MoE layers, %s routing; mma.sync and wgmma (n128, n256 weight tiles); "
                "floor = max(FP8 peak, bytes / copy bandwidth); auto = what kAuto runs\n",
                random_routing ? "random top-k" : "uniform");
    std::printf("%-8s %-8s %6s %7s %6s %9s %7s %9s %7s %9s %7s %9s %7s %9s %5s\n", "model", "gemm", "tokens", "rows",
                "mean", "mma us", "TFLOPS", "n128 us", "TFLOPS", "n256 us", "TFLOPS", "cutl us", "TFLOPS", "floor us",
                "auto");
    for (const Model& md : models) {
      Tensor gu_q, gu_s, dn_q, dn_s;
      random_fp8({md.experts * 2 * md.inter, md.hidden}, 11, gu_q, gu_s, stream);
      random_fp8({md.experts * md.hidden, md.inter}, 12, dn_q, dn_s, stream);
      gu_q = gu_q.reshape({md.experts, 2 * md.inter, md.hidden});
      gu_s = gu_s.reshape({md.experts, 2 * md.inter / 128, md.hidden / 128});
      dn_q = dn_q.reshape({md.experts, md.hidden, md.inter});
      dn_s = dn_s.reshape({md.experts, md.hidden / 128, md.inter / 128});
      for (int64_t t : md.tokens) {
        const int64_t rows = t * md.top_k;
        Tensor offsets;
        if (random_routing) {  // each token to top_k distinct experts at random (bench_routing.h)
          double active = 0.0;
          offsets = random_routings(md.experts, md.top_k, t, 0.0, 0.0, active)[0];
        } else {
          std::vector<int32_t> off(static_cast<size_t>(md.experts + 1));
          for (int64_t i = 0; i <= md.experts; ++i) off[i] = static_cast<int32_t>(i * rows / md.experts);
          Tensor off_host = Tensor::empty({md.experts + 1}, DType::kI32);
          std::copy(off.begin(), off.end(), off_host.data<int32_t>());
          offsets = off_host.to(Device::kCUDA);
        }
        for (const bool swiglu : {true, false}) {
          const int64_t k = swiglu ? md.hidden : md.inter, n_out = swiglu ? md.inter : md.hidden;
          const int64_t w_rows = swiglu ? 2 * md.inter : md.hidden;
          Tensor a_q = Tensor::empty({rows, k}, DType::kF8E4M3, Device::kCUDA);
          Tensor a_s = Tensor::empty({rows, k / 128}, DType::kF32, Device::kCUDA);
          {
            const Tensor x = random_bf16({rows, k}, 13, stream);
            ops::quantize_activations_fp8_cuda(x, ops::ActQuantParams{}, a_q, a_s, stream);
          }
          Tensor out = Tensor::empty({rows, n_out}, DType::kBF16, Device::kCUDA);
          const Tensor& b_q = swiglu ? gu_q : dn_q;
          const Tensor& b_s = swiglu ? gu_s : dn_s;
          auto time_kernel = [&](ops::MoeFp8Kernel kernel) {
            return time_us(timer, stream, [&](int) {
              ops::moe_grouped_gemm_fp8_cuda(a_q, a_s, offsets, b_q, b_s, swiglu, out, stream, kernel);
            });
          };
          const double mma = time_kernel(ops::MoeFp8Kernel::kMmaSync);
          const double n128 = time_kernel(ops::MoeFp8Kernel::kWgmmaN128);
          const double n256 = time_kernel(ops::MoeFp8Kernel::kWgmmaN256);
          // CUTLASS's grouped kernel: the plain epilogue only (0 = not run).
          const double cutl = swiglu ? 0.0 : time_kernel(ops::MoeFp8Kernel::kCutlassGrouped);
          const char* picked = ops::sm90::moe_fp8::use_cutlass_grouped(swiglu, rows, md.experts) ? "cutl"
                               : !ops::sm90::moe_fp8::use_wgmma(rows, md.experts)     ? "mma"
                               : ops::sm90::moe_fp8::choose_bn(n_out, swiglu, rows, md.experts) == 256 ? "n256"
                                                                                     : "n128";
          const double flops = 2.0 * rows * w_rows * k;
          // Floor: the tensor cores' peak or the bytes (every expert's weights once, A, out) at the
          // copy bandwidth, whichever is longer.
          const double bytes = static_cast<double>(md.experts) * w_rows * k + rows * (k + 2.0 * n_out);
          const double floor = std::max(flops / kFp8PeakTflops / 1e6, bytes / copy / 1e3);
          const int64_t mean = rows / std::min(md.experts, rows);
          std::printf("%-8s %-8s %6ld %7ld %6ld %9.1f %7.1f %9.1f %7.1f %9.1f %7.1f %9.1f %7.1f %9.1f %5s\n", md.name,
                      swiglu ? "gate_up" : "down", t, rows, mean, mma, flops / mma / 1e6, n128, flops / n128 / 1e6,
                      n256, flops / n256 / 1e6, cutl, cutl > 0 ? flops / cutl / 1e6 : 0.0, floor, picked);
          nlohmann::json row = {{"model", md.name},       {"gemm", swiglu ? "gate_up" : "down"},
                                {"tokens", t},            {"rows", rows},
                                {"experts", md.experts},  {"k", k},
                                {"weight_rows", w_rows},  {"mma_sync_us", mma},
                                {"wgmma_n128_us", n128},  {"wgmma_n256_us", n256},
                                {"floor_us", floor},      {"auto", picked},
                                {"routing", random_routing ? "random" : "uniform"}};
          if (!swiglu) row["cutlass_coop_us"] = cutl;
          shape_rows.push_back(std::move(row));
        }
      }
    }
  }

  // 2b. The grouped BF16 GEMMs of real MoE layers.
  const nlohmann::json bf16_shape_rows =
      section("bf16-shapes") ? bf16_shapes(timer, stream, copy) : nlohmann::json::array();

  // 3. The expert layers of V3 and V2-Lite, FP8 against BF16; then both paths at decode sizes.
  nlohmann::json layer_rows = nlohmann::json::array();
  nlohmann::json path_rows = nlohmann::json::array();
  struct Layer {
    const char* name;
    int64_t e, h, im, top_k;
    std::vector<int64_t> tokens;
    std::vector<int64_t> decode_tokens;  // the decode sizes timed through each path
  };
  for (const Layer& ly : {Layer{"v3", 256, 7168, 2048, 8, {1, 16, 64, 128, 1024, 4096, 16384}, {1, 2, 4, 6, 8}},
                          Layer{"v2-lite", 64, 2048, 1408, 6, {1, 8, 64, 256}, {1, 2, 4, 6, 8, 12, 16}},
                          Layer{"v3-tp8-channels", 256, 7168, 256, 8, {1, 16, 32, 64, 128, 1024},
                                {1, 2, 4, 8, 12, 16}}}) {
    const std::string name = ly.name;
    const bool own =
        (section("v2l-layer") && name == "v2-lite") || (section("channels-layer") && name == "v3-tp8-channels");
    if (!section("layers") && !own) continue;
    const int64_t e = ly.e, h = ly.h, im = ly.im, top_k = ly.top_k;
    ops::ExpertWeights fp8;
    random_fp8({e * 2 * im, h}, 3, fp8.gate_up, fp8.gate_up_scale, stream);
    random_fp8({e * h, im}, 4, fp8.down, fp8.down_scale, stream);
    fp8.gate_up = fp8.gate_up.reshape({e, 2 * im, h});
    fp8.gate_up_scale = fp8.gate_up_scale.reshape({e, 2 * im / 128, h / 128});
    fp8.down = fp8.down.reshape({e, h, im});
    fp8.down_scale = fp8.down_scale.reshape({e, h / 128, im / 128});
    ops::ExpertWeights bf16{random_bf16({e, 2 * im, h}, 5, stream), random_bf16({e, h, im}, 6, stream), {}, {}};
    std::printf("\n%s expert layer (E %ld, H %ld, Im %ld, top-%ld, uniform routing); floor: active e4m3 weights / "
                "copy bandwidth\n",
                ly.name, e, h, im, top_k);
    std::printf("%7s %6s %7s %10s %10s %8s %9s %7s %9s\n", "tokens", "rows", "active", "fp8 us", "bf16 us", "bf16/fp8",
                "floor us", "xfloor", "fp8 TFLOPS");
    for (int64_t t : ly.tokens) {
      const int64_t rows = t * top_k, active = std::min(e, rows);
      std::vector<int32_t> off(static_cast<size_t>(e + 1));
      for (int64_t i = 0; i <= e; ++i) off[i] = static_cast<int32_t>(i * rows / e);
      Tensor off_host = Tensor::empty({e + 1}, DType::kI32);
      std::copy(off.begin(), off.end(), off_host.data<int32_t>());
      const Tensor offsets = off_host.to(Device::kCUDA);
      const Tensor x = random_bf16({rows, h}, 7, stream);
      Tensor hidden = Tensor::empty({rows, im}, DType::kBF16, Device::kCUDA);
      Tensor out = Tensor::empty({rows, h}, DType::kBF16, Device::kCUDA);
      const double fp8_us = time_us(timer, stream, [&](int) {
        ops::moe_experts_fp8_cuda(x, offsets, fp8, ops::ActQuantParams{}, hidden, out, stream);
      });
      const double bf16_us =
          time_us(timer, stream, [&](int) { ops::moe_experts_cuda(x, offsets, bf16, hidden, out, stream); });
      const double weight_bytes = static_cast<double>(active) * 3 * h * im;  // e4m3
      const double floor_us = weight_bytes / copy / 1e3;                     // bytes at the copy's rate
      const double flops = 2.0 * rows * 3 * h * im;
      std::printf("%7ld %6ld %7ld %10.1f %10.1f %8.2f %9.1f %7.2f %9.1f\n", t, rows, active, fp8_us, bf16_us,
                  bf16_us / fp8_us, floor_us, fp8_us / floor_us, flops / fp8_us / 1e6);
      layer_rows.push_back({{"model", ly.name}, {"tokens", t}, {"rows", rows}, {"active_experts", active},
                            {"fp8_us", fp8_us}, {"bf16_us", bf16_us}, {"floor_us", floor_us},
                            {"fp8_tflops", flops / fp8_us / 1e6}});
    }

    // Decode sizes through each path forced (the note at the top).
    std::printf("\n%s experts at decode sizes, each path forced; random routings (top-%ld distinct experts a "
                "token) rotated past L2; floor: the active experts' weights / copy bandwidth\n",
                ly.name, top_k);
    std::printf("%7s %6s %7s %6s %16s %10s %9s %9s %7s\n", "tokens", "rows", "active", "dtype", "path", "us", "GB/s",
                "floor us", "xfloor");
    // The paths: the GEMV through the dispatch, the GEMV with each launch shape, the grouped GEMMs.
    struct PathRun {
      std::string name;
      ops::MoeExpertsPath path;
      const ops::gpu::MoeGemvConfig* gemv_config;  // null: through moe_experts_cuda / _fp8_cuda
    };
    std::vector<PathRun> path_runs = {{"gemv", ops::MoeExpertsPath::kGemv, nullptr}};
    for (const ops::gpu::MoeGemvConfig& c : kGemvSweep) {
      path_runs.push_back({"gemv c" + std::to_string(c.ctas_per_sm) + " d" + std::to_string(c.depth) + " t" +
                               std::to_string(c.tiles_per_cta),
                           ops::MoeExpertsPath::kGemv, &c});
    }
    path_runs.push_back({"grouped_gemm", ops::MoeExpertsPath::kGroupedGemm, nullptr});
    for (int64_t t : ly.decode_tokens) {
      const int64_t rows = t * top_k;
      double active = 0.0;
      const std::vector<Tensor> routings = random_routings(e, top_k, t, 2.0 * 3 * h * im, kRotateBytes, active);
      const auto sets = static_cast<int>(routings.size());
      const Tensor x = random_bf16({rows, h}, 8, stream);                      // [P, H]
      Tensor hidden = Tensor::empty({rows, im}, DType::kBF16, Device::kCUDA);  // [P, Im]
      Tensor out = Tensor::empty({rows, h}, DType::kBF16, Device::kCUDA);      // [P, H]
      for (const bool is_fp8 : {false, true}) {
        const double weight_bytes = active * 3 * h * im * (is_fp8 ? 1.0 : 2.0);
        const double floor_us = weight_bytes / copy / 1e3;
        for (const PathRun& run : path_runs) {
          const ops::MoeExpertsPath path = run.path;
          const double us = time_us(timer, stream, [&](int i) {
            const Tensor& offsets = routings[static_cast<size_t>(i % sets)];
            if (run.gemv_config != nullptr) {
              ops::moe_experts_gemv_cuda(x, offsets, is_fp8 ? fp8 : bf16, ops::ActQuantParams{}, hidden, out, stream,
                                         *run.gemv_config);
            } else if (is_fp8) {
              ops::moe_experts_fp8_cuda(x, offsets, fp8, ops::ActQuantParams{}, hidden, out, stream, path);
            } else {
              ops::moe_experts_cuda(x, offsets, bf16, hidden, out, stream, path);
            }
          });
          const char* path_name = run.name.c_str();
          const char* dtype = is_fp8 ? "fp8" : "bf16";
          std::printf("%7ld %6ld %7.1f %6s %16s %10.1f %9.0f %9.1f %7.2f\n", t, rows, active, dtype, path_name, us,
                      weight_bytes / us / 1e3, floor_us, us / floor_us);
          path_rows.push_back({{"model", ly.name}, {"tokens", t}, {"rows", rows}, {"active_experts", active},
                               {"dtype", dtype}, {"path", path_name}, {"us", us},
                               {"weight_gbps", weight_bytes / us / 1e3}, {"floor_us", floor_us},
                               {"routings", sets}});
        }
      }
    }
  }

  write_report(out_dir, "moe_fp8", prop.name, command_line(argc, argv),
               {{"card", prop.name},
                {"copy_gbps", copy},
                {"fp8_peak_tflops", kFp8PeakTflops},
                {"grouped_gemm", gemm_rows},
                {"bf16_peak_tflops", kBf16PeakTflops},
                {"moe_shapes", shape_rows},
                {"moe_shapes_bf16", bf16_shape_rows},
                {"expert_layers", layer_rows},
                {"expert_layer_paths", path_rows}});
  MLA_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}

}  // namespace
}  // namespace mlaserve::bench

int main(int argc, char** argv) {
  return mlaserve::bench::run_program("moe_fp8_bench", mlaserve::bench::run, argc, argv);
}
