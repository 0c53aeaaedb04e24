// `mlaserve bench throughput`: N prompts of random token ids, all submitted at once, each
// generating exactly --output-len tokens; requests and tokens per second over the whole run.
// Before it, --num-warmup untimed batches of other random prompts, enough to fill one step's token
// budget, generating a few tokens each: the first launch of every kernel, the GEMM plans, the
// decode graphs and the pipeline's connections are not paid inside the measured run (a server
// pays them once, at its first requests).
//   mlaserve bench throughput --model tests/data/tiny-v3 --num-prompts 32 --input-len 128 --output-len 32
//   mlaserve bench throughput --load-format dummy --preset deepseek-v2-lite --device cuda --num-prompts 1000
#include <algorithm>
#include <cstdio>

#include "cli/cmd_bench.h"
#include "core/device_cache.h"
#include "ops/gemm_plan_stats.h"

namespace mlaserve::cli {
namespace {

struct ThroughputArgs {
  BenchEngineArgs engine;
  int64_t num_prompts = 64;
  int64_t input_len = 256;
  int64_t shared_prefix_len = 0;  // tokens every prompt starts with (a system prompt), before input_len of its own
  int64_t output_len = 64;
  int64_t num_warmup = 1;
};

// The warm-up batch: prompts of input_len (no shared prefix, another seed: the measured run's
// prompts find none of them in the prefix cache) that fill one step's budget, 4 tokens each.
void warm_up(Engine& engine, const ThroughputArgs& a) {
  const int64_t budget = a.engine.max_num_batched_tokens;
  const int64_t n = std::min(a.num_prompts, budget / a.input_len + 1);
  const auto prompts = random_prompts(n, a.input_len, engine.vocab_size(), a.engine.seed + 2);
  for (int64_t i = 0; i < a.num_warmup; ++i) {
    run_batch(engine, prompts, std::min<int64_t>(a.output_len, 4), a.engine, "throughput warm-up");
  }
}

void run_throughput(const ThroughputArgs& a) {
  const int64_t prompt_len = a.shared_prefix_len + a.input_len;
  const auto blocks_needed = static_cast<int32_t>(a.num_prompts * blocks_for_tokens(prompt_len + a.output_len));
  BenchEngine b = make_bench_engine(a.engine, blocks_needed);
  if (!b.engine) return;  // a rank other than 0 of a split model: it ran rank 0's steps
  auto prompts = random_prompts(a.num_prompts, a.input_len, b.engine->vocab_size(), a.engine.seed);
  if (a.shared_prefix_len > 0) {
    const std::vector<int32_t> prefix =
        random_prompts(1, a.shared_prefix_len, b.engine->vocab_size(), a.engine.seed + 1).front();
    for (std::vector<int32_t>& p : prompts) p.insert(p.begin(), prefix.begin(), prefix.end());
  }
  warm_up(*b.engine, a);
  const EngineStats before = b.engine->stats();
  const auto start = std::chrono::steady_clock::now();
  const std::vector<RequestTiming> timing = run_batch(*b.engine, prompts, a.output_len, a.engine, "throughput");
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::vector<double> ttft;
  int64_t output_tokens = 0;
  for (const RequestTiming& t : timing) {
    ttft.push_back(t.first_token_s);
    output_tokens += t.output_tokens;
  }
  EngineStats s = b.engine->stats();  // the measured run's
  s.num_steps -= before.num_steps;
  s.num_scheduled_tokens -= before.num_scheduled_tokens;
  s.num_preemptions -= before.num_preemptions;
  s.prefix_query_tokens -= before.prefix_query_tokens;
  s.prefix_hit_tokens -= before.prefix_hit_tokens;
  const double input_tokens = static_cast<double>(a.num_prompts * prompt_len);
  const double hit_rate = s.prefix_query_tokens > 0 ? double(s.prefix_hit_tokens) / double(s.prefix_query_tokens) : 0.0;
  nlohmann::json results = {
      {"num_prompts", a.num_prompts},
      {"input_len", a.input_len},
      {"shared_prefix_len", a.shared_prefix_len},
      {"output_len", a.output_len},
      {"num_warmup", a.num_warmup},
      {"elapsed_s", elapsed},
      {"requests_per_s", double(a.num_prompts) / elapsed},
      {"input_tokens_per_s", input_tokens / elapsed},
      {"output_tokens_per_s", double(output_tokens) / elapsed},
      {"total_tokens_per_s", (input_tokens + double(output_tokens)) / elapsed},
      {"ttft_mean_s", mean(ttft)},
      {"ttft_p50_s", percentile(ttft, 50)},
      {"ttft_p99_s", percentile(ttft, 99)},
      {"engine_steps", s.num_steps},
      {"tokens_per_step", double(s.num_scheduled_tokens) / double(std::max<int64_t>(s.num_steps, 1))},
      {"preemptions", s.num_preemptions},
      {"prefix_hit_rate", hit_rate}};
  const DeviceCacheStats cache = device_cache_stats();  // rank 0's allocator
  const ops::GemmPlanStats plans = ops::gemm_plan_stats();
  results["device_cache"] = {{"mallocs", cache.mallocs},
                             {"releases", cache.releases},
                             {"host_ms", cache.host_ms},
                             {"cached_gib", double(cache.cached_bytes) / double(1 << 30)},
                             {"used_gib", double(cache.used_bytes) / double(1 << 30)}};
  results["gemm_plans"] = {{"built", plans.plans}, {"host_ms", plans.host_ms}};

  std::printf("%-26s %s on %s\n", "model", b.model_name.c_str(), b.card.c_str());
  std::printf("%-26s %lld x (%lld in, %lld out)\n", "requests", static_cast<long long>(a.num_prompts),
              static_cast<long long>(prompt_len), static_cast<long long>(a.output_len));
  std::printf("%-26s %.3f s\n", "elapsed", elapsed);
  std::printf("%-26s %.2f\n", "requests/s", results["requests_per_s"].get<double>());
  std::printf("%-26s %.1f\n", "input tokens/s", results["input_tokens_per_s"].get<double>());
  std::printf("%-26s %.1f\n", "output tokens/s", results["output_tokens_per_s"].get<double>());
  std::printf("%-26s %.1f\n", "total tokens/s", results["total_tokens_per_s"].get<double>());
  std::printf("%-26s %.1f / %.1f / %.1f ms\n", "TTFT mean / p50 / p99", 1e3 * results["ttft_mean_s"].get<double>(),
              1e3 * results["ttft_p50_s"].get<double>(), 1e3 * results["ttft_p99_s"].get<double>());
  std::printf("%-26s %lld (%.1f tokens each)\n", "engine steps", static_cast<long long>(s.num_steps),
              results["tokens_per_step"].get<double>());
  std::printf("%-26s %lld\n", "preemptions", static_cast<long long>(s.num_preemptions));
  std::printf("%-26s %.1f%%\n", "prefix cache hits", 100.0 * hit_rate);
  std::printf("%-26s %lld cudaMalloc, %lld full-device releases, %.1f ms host; %.2f GiB idle, %.2f GiB used\n",
              "GPU allocator (rank 0)", static_cast<long long>(cache.mallocs), static_cast<long long>(cache.releases),
              cache.host_ms, double(cache.cached_bytes) / double(1 << 30), double(cache.used_bytes) / double(1 << 30));
  std::printf("%-26s %lld built, %.1f ms host\n", "GEMM plans (rank 0)", static_cast<long long>(plans.plans),
              plans.host_ms);

  nlohmann::json doc = result_header("throughput", b, a.engine);
  doc["results"] = results;
  write_result(doc, a.engine.results_dir);
}

}  // namespace

void register_bench_throughput(CLI::App& bench) {
  auto args = std::make_shared<ThroughputArgs>();
  auto* cmd = bench.add_subcommand("throughput", "N random prompts submitted at once: requests and tokens per second");
  add_bench_engine_options(*cmd, args->engine);
  cmd->add_option("--num-prompts", args->num_prompts, "Requests")->check(CLI::PositiveNumber);
  cmd->add_option("--input-len", args->input_len, "Prompt tokens per request (after the shared prefix)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--shared-prefix-len", args->shared_prefix_len,
                  "Tokens every prompt starts with (a shared system prompt: exercises the prefix cache)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--output-len", args->output_len, "Generated tokens per request")->check(CLI::PositiveNumber);
  cmd->add_option("--num-warmup", args->num_warmup,
                  "Untimed batches run first (prompts that fill one step's token budget, 4 tokens each)")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([args] { run_throughput(*args); });
}

}  // namespace mlaserve::cli
