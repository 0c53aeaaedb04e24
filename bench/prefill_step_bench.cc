// One prefill step of a DeepSeek model on one GPU (BF16 or block FP8, dummy weights at a preset's
// real shapes): one sequence of T new tokens after `context` cached ones (a whole prompt, or a
// chunk of a chunked prefill), run eagerly as the engine runs prefill steps, its logits for the
// last row only. Prints time, tokens/s and the model's TFLOPS at each T, writes JSON (card, date,
// command) under --out; --trace DIR writes every kernel of one step (the second of two traced:
// kernel_trace.h) to DIR/trace_<card>_<preset>_<dtype>_prefill_t<T>_c<context>.csv and prints
// where the step's time goes, as decode_step_bench --trace does for a decode step.
//
//   prefill_step_bench [--preset deepseek-v2-lite] [--num-layers N] [--quantization none|fp8]
//                      [--tokens 512,2048,4096] [--context 0] [--reps 5] [--side-stream on|off]
//                      [--out bench/results] [--trace DIR]
//
// The model's FLOPs of a step (the "TFLOPS" column): 2 x T x the weights one token multiplies
// (every projection, the dense MLP or the shared and the k routed experts plus the router, kv_b as
// the MHA form applies it to the new rows) + 2 x heads x (qk_head_dim + v_head_dim) x the causal
// query-key pairs (T x context + T (T + 1) / 2) + lm_head's one row. Work the MHA form adds for the
// cached context (kv_b over its latent rows) is not counted: the column is the model's rate, not
// the hardware's. What a step's time goes to is the trace's to say.
//
// Not a floor: a prefill step is bound by the tensor cores, whose peak this program does not
// measure; fp8_gemm_bench and gemm_bench set the GEMMs beside cuBLASLt. A program, not a test.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_main.h"
#include "bench_model.h"
#include "bench_report.h"
#include "kernel_trace.h"
#include "core/cuda_check.h"
#include "core/device_cache.h"
#include "core/new_file.h"
#include "kv/block_table.h"
#include "model/model.h"
#include "ops/random_fill.h"

namespace mlaserve {
namespace {

// The model's FLOPs of one prefill step (the note at the top).
double prefill_flops(const DeepSeekConfig& c, int64_t t, int64_t context) {
  const double h = c.hidden_size, n = c.num_attention_heads, tokens = static_cast<double>(t);
  const double q = c.q_lora_rank ? h * *c.q_lora_rank + *c.q_lora_rank * n * c.qk_head_dim : h * n * c.qk_head_dim;
  const double attn_weights = q + h * c.kv_cache_dim + c.kv_lora_rank * n * (c.qk_nope_head_dim + c.v_head_dim) +
                              n * c.v_head_dim * h;
  const double pairs = tokens * static_cast<double>(context) + tokens * (tokens + 1) / 2;
  double per_token = 0.0;  // weights one token multiplies
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    per_token += attn_weights;
    per_token += c.is_moe_layer(i) ? 3 * h * c.moe_intermediate_size * double(c.num_experts_per_tok + c.n_shared_experts) +
                                         h * c.n_routed_experts
                                   : 3 * h * c.intermediate_size;
  }
  const double attention = 2 * n * double(c.qk_head_dim + c.v_head_dim) * pairs * c.num_hidden_layers;
  return 2 * tokens * per_token + attention + 2 * h * c.vocab_size;
}

// One sequence of t new tokens after `context` cached ones, in blocks 0, 1, ... of the cache.
ForwardBatch prefill_batch(const DeepSeekConfig& c, int64_t t, int64_t context) {
  BlockTable table;
  for (int64_t j = 0; j < blocks_for_tokens(context + t); ++j) table.blocks.push_back(static_cast<BlockId>(j));
  ForwardBatch batch;
  for (int64_t i = 0; i < t; ++i) {
    batch.token_ids.push_back(static_cast<int32_t>((i * 7919 + 13) % c.vocab_size));
    batch.positions.push_back(static_cast<int32_t>(context + i));
    batch.slot_mapping.push_back(table.slot(context + i));
  }
  batch.logit_rows.push_back(static_cast<int32_t>(t - 1));
  batch.sequences.push_back({0, static_cast<int32_t>(t), static_cast<int32_t>(context), table.blocks});
  return batch;
}

int run(int argc, char** argv) {
  std::string preset = "deepseek-v2-lite", out_dir = "bench/results", tokens_arg = "512,2048,4096", quant = "none";
  std::string side_stream = "on", trace_dir;
  int64_t context = 0, reps = 5, num_layers = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--preset") preset = v;
    else if (k == "--num-layers") num_layers = std::stoll(v);
    else if (k == "--quantization") quant = v;
    else if (k == "--tokens") tokens_arg = v;
    else if (k == "--context") context = std::stoll(v);
    else if (k == "--reps") reps = std::stoll(v);
    else if (k == "--side-stream") side_stream = v;
    else if (k == "--out") out_dir = v;
    else if (k == "--trace") trace_dir = v;
    else MLA_FAIL("unknown option {}", k);
  }
  MLA_CHECK(argc % 2 == 1, "every option takes a value");
  const std::vector<int64_t> tokens = bench::parse_int_list(tokens_arg);
  MLA_CHECK(!tokens.empty() && *std::min_element(tokens.begin(), tokens.end()) >= 1, "--tokens must be >= 1");
  MLA_CHECK(context >= 0 && reps >= 1, "--context must be >= 0 and --reps >= 1");
  MLA_CHECK(quant == "none" || quant == "fp8", "--quantization must be none or fp8, got {}", quant);
  MLA_CHECK(side_stream == "on" || side_stream == "off", "--side-stream must be on or off, got {}", side_stream);
  cudaDeviceProp prop{};
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));

  DeepSeekConfig config = bench::preset_cut(preset, num_layers);
  const bool fp8 = quant == "fp8";
  DummyOptions dummy = bench::gpu_dummy_options(config, preset, fp8);
  ModelOptions options;
  options.device = Device::kCUDA;
  options.side_stream = side_stream == "on";
  const auto t0 = std::chrono::steady_clock::now();
  DeepSeekModel model(config, make_dummy_weights(config, dummy), options);
  MLA_CUDA_CHECK(cudaDeviceSynchronize());
  release_idle_device_memory();
  std::printf("card: %s; %s %s dummy weights (%lld layers) on the GPU in %.1f s\n", prop.name, preset.c_str(),
              fp8 ? "fp8" : "bf16", static_cast<long long>(config.num_hidden_layers),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

  const int64_t max_t = *std::max_element(tokens.begin(), tokens.end());
  LatentCache cache = model.make_cache(blocks_for_tokens(context + max_t));
  for (int64_t l = 0; l < cache.num_layers(); ++l) {
    ops::fill_uniform(ops::UniformFill{uint64_t(l + 1), 1.0f, 0.0f}, cache.layer(l));  // the context's rows
  }
  const std::string dtype = fp8 ? "fp8" : "bf16";
  nlohmann::json rows = nlohmann::json::array();
  std::printf("%8s %8s %10s %10s %12s %10s\n", "tokens", "context", "median ms", "min ms", "tok/s", "TFLOPS");
  for (int64_t t : tokens) {
    const ForwardBatch batch = prefill_batch(config, t, context);
    model.forward(batch, cache);  // warm-up: workspaces sized, cuBLASLt's plans made
    std::vector<double> ms;
    for (int64_t r = 0; r < reps; ++r) {
      MLA_CUDA_CHECK(cudaDeviceSynchronize());
      const auto s0 = std::chrono::steady_clock::now();
      model.forward(batch, cache);
      MLA_CUDA_CHECK(cudaDeviceSynchronize());
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s0).count());
    }
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2], flops = prefill_flops(config, t, context);
    const double tflops = flops / (median * 1e-3) / 1e12;
    std::printf("%8lld %8lld %10.3f %10.3f %12.0f %10.1f\n", static_cast<long long>(t), static_cast<long long>(context),
                median, ms.front(), t / (median * 1e-3), tflops);
    rows.push_back({{"tokens", t}, {"context", context}, {"step_ms_median", median}, {"step_ms_min", ms.front()},
                    {"tok_per_s", t / (median * 1e-3)}, {"model_flops", flops}, {"model_tflops", tflops}});
  }
  bench::write_report(out_dir, "prefill_step", prop.name, bench::command_line(argc, argv),
                      {{"card", prop.name},
                       {"preset", preset},
                       {"dtype", dtype},
                       {"num_layers", config.num_hidden_layers},
                       {"side_stream", side_stream},
                       {"results", rows}});
  if (trace_dir.empty()) return 0;
  for (int64_t t : tokens) {  // after every timing: CUPTI stays attached once it has traced (kernel_trace.h)
    const ForwardBatch batch = prefill_batch(config, t, context);
    const std::string path = fmt::format("{}/trace_{}_{}_{}_prefill_t{}_c{}.csv", trace_dir,
                                         file_name_part(prop.name), preset, dtype, t, context);
    bench::report_trace(path, bench::trace_last_run([&] { model.forward(batch, cache); }, 2),
                        fmt::format("{} tokens after {}", t, context));
  }
  return 0;
}

}  // namespace
}  // namespace mlaserve

int main(int argc, char** argv) {
  return mlaserve::bench::run_program("prefill_step_bench", mlaserve::run, argc, argv);
}
