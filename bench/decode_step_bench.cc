// Whole decode step of a DeepSeek model on one GPU (BF16 or block FP8, dummy weights at a preset's real
// shapes): time per step at several batch sizes, beside the floor
//   floor = (weight bytes a step must read + latent-cache bytes of the batch) / copy bandwidth
// where the weights a step reads are every non-expert weight (embedding rows aside), the
// shared experts, lm_head, and the routed experts that the batch's tokens can touch (expected
// distinct experts per MoE layer under uniform routing: E·(1 − (1 − k/E)^B)); the copy
// bandwidth is measured in the same run (device-to-device memcpy, bytes read + written).
//
//   decode_step_bench [--preset deepseek-v2-lite] [--context 1024] [--batches 1,8,64,256]
//                     [--reps 20] [--out bench/results] [--quantization none|fp8]
//                     [--fused-attention on|off] [--norm-quant on|off] [--mla-multicast on|off]
//                     [--side-stream on|off]
//                     [--num-layers N] [--num-heads N]
//                     [--tp-rank-of N [--tp-rank R] [--expert-split experts|channels]] [--trace DIR]
//
// --quantization fp8: the same dummy weights quantised to block FP8 on the GPU (W8A8 GEMMs,
// model/quantize_fp8.h); the floor then counts one byte per linear and expert weight.
// --fused-attention off: the absorbed attention as three kernels even where the fused one fits
// (ModelOptions::fused_absorbed_attention; A/B).
// --norm-quant off: with FP8 weights each FP8 linear quantises its own input instead of reading
// the quantised activation its norm wrote (ModelOptions::quantize_in_norms; A/B). The norms
// quantise only in steps of more than 8 tokens, or at every step for rows as wide as V3's
// (ops::fp8_norm_quantization_pays), so V2-Lite's batches 1-8 run the same kernels either way.
// --mla-multicast off: the 128-head MLA decode kernel's query tile pairs copy each KV block apart
// instead of sharing it by multicast (ModelOptions::mla_kv_multicast; A/B).
// --side-stream off: every kernel of a layer on the model's stream, in order, instead of the
// latent row beside the query projection and the shared experts beside the routed ones on a second
// stream (ModelOptions::side_stream; A/B, and what the serial chain costs without the overlap).
// --num-layers N: the preset cut to its first N layers (the dense ones first, as in the model), so
// that V3's shapes fit one GPU (--preset deepseek-v3 --quantization fp8 --num-layers 5: 3 dense + 2
// MoE layers); the floor counts the layers that run.
// --num-heads N: the preset's attention with N heads (the heads of one rank of V2 or V3 under
// tensor parallelism, 128 / TP: the attention kernels a rank runs; the MoE stays whole).
// --tp-rank-of N: rank R (--tp-rank, default 0) of N tensor-parallel ranks (model/shard_plan.h:
// 1/N of the heads, the dense MLP and shared-expert channels, 1/N of the routed experts whole or
// of every expert's channels (--expert-split), and lm_head), alone on this GPU: its kernels
// as under --tensor-parallel-size N, less the all-reduces (solo_rank_collectives.h; the values are
// not the model's). The floor counts the rank's weights (of the routed experts, the expected bytes
// a rank reads, the same under either split).
// --trace DIR: after all the timings, each batch's graph replayed with CUPTI's kernel tracing on
// (kernel_trace.h): every kernel of one step with its GPU start and end into
// DIR/trace_<card>_<preset>_<dtype>_b<B>.csv, and the kernels charged the most of the step's time
// printed (where it goes, inside the graph). Needs libcupti at run time.
//
// Each step runs B sequences of one new token each, after `context` cached tokens (cache contents
// random: attention cost does not depend on the values), twice: eagerly (DeepSeekModel::forward,
// every kernel launched from the host) and as the engine runs decode steps, one CUDA graph replay
// (engine/decode_graphs.h), which runs B in the graph of the next captured size ("graph B": the
// extra rows are padding, routed as real rows, as in the engine); "x floor" is the graph's. Prints
// a table and writes JSON (card, date, command) under --out. A program, not a test.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_main.h"
#include "bench_model.h"
#include "bench_report.h"
#include "copy_bandwidth.h"
#include "kernel_trace.h"
#include "solo_rank_collectives.h"
#include "core/cuda_check.h"
#include "core/device_cache.h"
#include "core/new_file.h"
#include "dist/partition.h"
#include "engine/decode_graphs.h"
#include "model/model.h"
#include "ops/random_fill.h"

namespace mlaserve {
namespace {

// Eager steps of the first batch before any timing. On one H200 (2026-12-04, fifty-seventh session,
// V3 FP8 TP8 channel rank) the first batch a process timed, in calls that had run ncu or
// compute-sanitizer before, often read ~23% slow in eager and graph timings both (graph ms
// 2.07-2.11 where the batch reads 1.70-1.72 at batch 8 and 1.33-1.36 at batch 4 when timed later):
// 8 of 10 processes, and 2 of 3 in a later call after ncu, where 3 processes with this warm-up
// read 1.701-1.718. Cause unknown (clocks settling is the likeliest).
constexpr std::chrono::seconds kWarmUp{2};

// Bytes one decode step of batch b must read (see the note at the top) on the rank holding `plan`
// (model/shard_plan.h; the whole model on one GPU): its heads, dense MLP and shared-expert channels,
// vocabulary rows, and of its routed experts' channels those the batch can touch (q_a, kv_a and the
// router are replicated). linear_bytes: bytes per element of the linear layers and experts (2 for
// BF16, 1 for block FP8, whose scales add 1/4096); lm_head, the router and kv_b_dense stay BF16
// either way.
double step_weight_bytes(const DeepSeekConfig& c, const ShardPlan& plan, int64_t b, double linear_bytes) {
  const double h = c.hidden_size, n = static_cast<double>(plan.heads.size()), bf16 = 2;
  const double attn = (c.q_lora_rank ? h * *c.q_lora_rank + *c.q_lora_rank * n * c.qk_head_dim : h * n * c.qk_head_dim) +
                      h * c.kv_cache_dim + n * c.v_head_dim * h;
  const double kv_b = n * (c.qk_nope_head_dim + c.v_head_dim) * c.kv_lora_rank;
  double total = static_cast<double>(plan.vocab_shard) * h * bf16;  // lm_head
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    total += attn * linear_bytes + kv_b * bf16;
    if (!c.is_moe_layer(i)) {
      total += 3 * h * static_cast<double>(plan.mlp.size()) * linear_bytes;
      continue;
    }
    const double e = c.n_routed_experts, k = c.num_experts_per_tok;
    const double touched = static_cast<double>(plan.experts.size()) * (1 - std::pow(1 - k / e, static_cast<double>(b)));
    const double channels = touched * static_cast<double>(plan.expert_channels.size()) +
                            static_cast<double>(plan.shared.size());  // routed experts touched, shared experts
    total += 3 * h * channels * linear_bytes + e * h * bf16;          // + router
  }
  return total;
}

// One graph replay of the batch-b step traced (--trace): its kernels into a CSV under dir, and the
// ten charged the most of its time printed. Called after every batch has been timed: once CUPTI
// has traced, it stays attached and the launches after it run slower (FP8 batch 8 +5%).
void trace_step(const std::string& dir, const std::string& card, const std::string& preset, const std::string& dtype,
                int64_t b, const std::function<void()>& replay) {
  const std::vector<bench::TracedKernel> kernels = bench::trace_last_graph_launch([&] {
    for (int i = 0; i < 3; ++i) replay();  // the last of three, caches warm
  });
  const std::string path = fmt::format("{}/trace_{}_{}_{}_b{}.csv", dir, file_name_part(card), preset, dtype, b);
  bench::report_trace(path, kernels, fmt::format("batch {}", b));
}

int run(int argc, char** argv) {
  std::string preset = "deepseek-v2-lite", out_dir = "bench/results", batches_arg = "1,8,64,256", quant = "none";
  std::string fused_attention = "on", norm_quant = "on", mla_multicast = "on", side_stream = "on", trace_dir;
  int64_t context = 1024, reps = 20, num_layers = 0, num_heads = 0, tp = 1, tp_rank = 0;
  std::string expert_split = "experts";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--preset") preset = v;
    else if (k == "--context") context = std::stoll(v);
    else if (k == "--batches") batches_arg = v;
    else if (k == "--reps") reps = std::stoll(v);
    else if (k == "--out") out_dir = v;
    else if (k == "--quantization") quant = v;
    else if (k == "--fused-attention") fused_attention = v;
    else if (k == "--norm-quant") norm_quant = v;
    else if (k == "--mla-multicast") mla_multicast = v;
    else if (k == "--side-stream") side_stream = v;
    else if (k == "--num-layers") num_layers = std::stoll(v);
    else if (k == "--num-heads") num_heads = std::stoll(v);
    else if (k == "--tp-rank-of") tp = std::stoll(v);
    else if (k == "--tp-rank") tp_rank = std::stoll(v);
    else if (k == "--expert-split") expert_split = v;
    else if (k == "--trace") trace_dir = v;
    else MLA_FAIL("unknown option {}", k);
  }
  const std::vector<int64_t> batches = bench::parse_int_list(batches_arg);
  cudaDeviceProp prop{};
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const double copy_gbps = bench::memcpy_gbps(nullptr);  // on the default stream

  DeepSeekConfig config = bench::preset_cut(preset, num_layers);
  MLA_CHECK(num_heads >= 0, "--num-heads must be positive, got {}", num_heads);
  if (num_heads > 0) config.num_attention_heads = num_heads;
  MLA_CHECK(quant == "none" || quant == "fp8", "--quantization must be none or fp8, got {}", quant);
  MLA_CHECK(fused_attention == "on" || fused_attention == "off", "--fused-attention must be on or off, got {}",
            fused_attention);
  MLA_CHECK(norm_quant == "on" || norm_quant == "off", "--norm-quant must be on or off, got {}", norm_quant);
  MLA_CHECK(mla_multicast == "on" || mla_multicast == "off", "--mla-multicast must be on or off, got {}",
            mla_multicast);
  MLA_CHECK(side_stream == "on" || side_stream == "off", "--side-stream must be on or off, got {}", side_stream);
  const bool fp8 = quant == "fp8";
  DummyOptions dummy = bench::gpu_dummy_options(config, preset, fp8);
  auto t0 = std::chrono::steady_clock::now();
  ModelOptions options;
  options.device = Device::kCUDA;
  options.fused_absorbed_attention = fused_attention == "on";
  options.quantize_in_norms = norm_quant == "on";
  options.mla_kv_multicast = mla_multicast == "on";
  options.side_stream = side_stream == "on";
  MLA_CHECK(tp >= 1 && tp_rank >= 0 && tp_rank < tp, "--tp-rank {} of --tp-rank-of {}", tp_rank, tp);
  MLA_CHECK(expert_split == "experts" || expert_split == "channels",
            "--expert-split must be experts or channels, got {}", expert_split);
  bench::SoloRankCollectives solo_rank(static_cast<int>(tp_rank), static_cast<int>(tp));
  if (tp > 1) {
    const dist::ParallelConfig parallel{static_cast<int>(tp), 1, static_cast<int>(tp_rank),
                                        expert_split == "channels" ? dist::ExpertSplit::kChannels
                                                                   : dist::ExpertSplit::kExperts};
    dummy.shard = options.shard = dist::make_shard_plan(config, parallel);
    options.tp_group = &solo_rank;
  }
  DeepSeekModel model(config, make_dummy_weights(config, dummy), options);
  MLA_CUDA_CHECK(cudaDeviceSynchronize());
  release_idle_device_memory();  // as a server does before it sizes the KV cache from what is free
  size_t free_bytes = 0, total_bytes = 0;
  MLA_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  std::printf("card: %s; copy %.0f GB/s; %s dummy weights on the GPU in %.1f s, %.2f GiB of %.2f free after\n",
              prop.name, copy_gbps, preset.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
              static_cast<double>(free_bytes) / (1 << 30), static_cast<double>(total_bytes) / (1 << 30));

  const int64_t max_b = *std::max_element(batches.begin(), batches.end());
  const int64_t blocks_per_seq = (context + 1 + kCacheBlockSize - 1) / kCacheBlockSize;
  LatentCache cache = model.make_cache(max_b * blocks_per_seq);
  for (int64_t l = 0; l < cache.num_layers(); ++l) ops::fill_uniform(ops::UniformFill{uint64_t(l + 1), 1.0f, 0.0f}, cache.layer(l));

  DecodeGraphs graphs(model, cache, max_b, context + 1);
  nlohmann::json rows = nlohmann::json::array();
  std::printf("%6s %8s %12s %12s %12s %10s %10s %8s\n", "batch", "context", "eager ms", "graph ms", "floor ms",
              "x floor", "tok/s", "graph B");
  std::vector<std::pair<int64_t, ForwardBatch>> traced;  // --trace: after every timing (see trace_step)
  for (int64_t b : batches) {
    ForwardBatch batch;
    for (int64_t s = 0; s < b; ++s) {
      SequenceSlice seq{static_cast<int32_t>(s), 1, static_cast<int32_t>(context), {}};
      for (int64_t j = 0; j < blocks_per_seq; ++j) seq.block_table.push_back(static_cast<int32_t>(s * blocks_per_seq + j));
      batch.token_ids.push_back(static_cast<int32_t>((s * 7919) % config.vocab_size));
      batch.positions.push_back(static_cast<int32_t>(context));
      batch.slot_mapping.push_back(int64_t{seq.block_table[context / kCacheBlockSize]} * kCacheBlockSize + context % kCacheBlockSize);
      batch.logit_rows.push_back(static_cast<int32_t>(s));
      batch.sequences.push_back(std::move(seq));
    }
    MLA_CHECK(graphs.accepts(batch), "decode_step_bench: the batch of {} is not a graph's", b);
    if (!trace_dir.empty()) traced.emplace_back(b, batch);
    auto median_ms = [&](auto&& run_step) {  // median of reps steps, after 3 warm-up steps
      for (int i = 0; i < 3; ++i) run_step();
      std::vector<double> ms;
      for (int64_t r = 0; r < reps; ++r) {
        MLA_CUDA_CHECK(cudaDeviceSynchronize());
        auto s0 = std::chrono::steady_clock::now();
        run_step();
        MLA_CUDA_CHECK(cudaDeviceSynchronize());
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s0).count());
      }
      std::sort(ms.begin(), ms.end());
      return std::pair{ms[ms.size() / 2], ms.front()};
    };
    if (b == batches.front()) {  // the process's first timing: the GPU held at full speed first
      const auto w0 = std::chrono::steady_clock::now();
      while (std::chrono::steady_clock::now() - w0 < kWarmUp) {
        model.forward(batch, cache);
        MLA_CUDA_CHECK(cudaDeviceSynchronize());
      }
    }
    const auto [eager, eager_min] = median_ms([&] { model.forward(batch, cache); });
    const auto [step, step_min] = median_ms([&] { graphs.run(batch); });
    const double kv_bytes = double(b) * (context + 1) * cache.bytes_per_token();
    const double bytes = step_weight_bytes(config, model.shard(), b, fp8 ? 1.0 : 2.0) + kv_bytes;
    const double floor_ms = bytes / (copy_gbps * 1e9) * 1e3;  // bytes at the measured copy rate (read + write)
    const int64_t graph_b = padded_graph_batch(b, max_b);
    std::printf("%6lld %8lld %12.3f %12.3f %12.3f %10.2f %10.0f %8lld\n", static_cast<long long>(b),
                static_cast<long long>(context), eager, step, floor_ms, step / floor_ms, b / (step * 1e-3),
                static_cast<long long>(graph_b));
    rows.push_back({{"batch", b}, {"context", context}, {"step_ms_median", step}, {"step_ms_min", step_min},
                    {"eager_ms_median", eager}, {"eager_ms_min", eager_min}, {"cuda_graphs", true},
                    {"graph_batch", graph_b},
                    {"floor_ms", floor_ms}, {"bytes", bytes}, {"kv_bytes", kv_bytes}, {"x_floor", step / floor_ms},
                    {"output_tok_per_s", b / (step * 1e-3)}});
  }
  bench::write_report(out_dir, "decode_step", prop.name, bench::command_line(argc, argv),
                      {{"card", prop.name},
                       {"preset", preset},
                       {"dtype", fp8 ? "fp8" : "bf16"},
                       {"fused_attention", fused_attention},
                       {"norm_quant", norm_quant},
                       {"mla_multicast", mla_multicast},
                       {"side_stream", side_stream},
                       {"num_layers", config.num_hidden_layers},
                       {"num_heads", config.num_attention_heads},
                       {"tp_rank_of", tp},
                       {"tp_rank", tp_rank},
                       {"expert_channels", model.shard().expert_channels.size()},
                       {"copy_gbps", copy_gbps},
                       {"free_gib_after_load", static_cast<double>(free_bytes) / (1 << 30)},
                       {"results", rows}});
  for (const auto& [b, batch] : traced) {
    trace_step(trace_dir, prop.name, preset, fp8 ? "fp8" : "bf16", b, [&] { graphs.run(batch); });
  }
  return 0;
}

}  // namespace
}  // namespace mlaserve

int main(int argc, char** argv) {
  return mlaserve::bench::run_program("decode_step_bench", mlaserve::run, argc, argv);
}
