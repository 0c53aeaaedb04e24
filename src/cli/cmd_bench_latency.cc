// `mlaserve bench latency`: one batch of --batch-size random prompts submitted at once, run to
// completion, --num-iters times after --num-warmup: the batch's latency, time to first token
// and time per output token (after the first), per iteration and summarised.
//   mlaserve bench latency --model tests/data/tiny-v3 --batch-size 8 --input-len 128 --output-len 32
#include <algorithm>
#include <cstdio>

#include "cli/cmd_bench.h"

namespace mlaserve::cli {
namespace {

struct LatencyArgs {
  BenchEngineArgs engine;
  int64_t batch_size = 8;
  int64_t input_len = 128;
  int64_t output_len = 32;
  int64_t num_iters = 3;
  int64_t num_warmup = 1;
};

struct Iteration {
  double latency_s = 0;  // submission to the last token of the batch
  double ttft_s = 0;     // mean over the batch
  double tpot_s = 0;     // mean over the batch of (last - first token) / (output tokens - 1)
};

Iteration measure(const std::vector<RequestTiming>& timing) {
  Iteration it;
  std::vector<double> ttft, tpot;
  for (const RequestTiming& t : timing) {
    it.latency_s = std::max(it.latency_s, t.last_token_s);
    ttft.push_back(t.first_token_s);
    if (t.output_tokens > 1) tpot.push_back((t.last_token_s - t.first_token_s) / double(t.output_tokens - 1));
  }
  it.ttft_s = mean(ttft);
  it.tpot_s = mean(tpot);
  return it;
}

void run_latency(const LatencyArgs& a) {
  const auto blocks_needed = static_cast<int32_t>(a.batch_size * blocks_for_tokens(a.input_len + a.output_len));
  BenchEngine b = make_bench_engine(a.engine, blocks_needed);
  if (!b.engine) return;  // a rank other than 0 of a split model: it ran rank 0's steps
  const int64_t vocab = b.engine->vocab_size();
  for (int64_t i = 0; i < a.num_warmup; ++i) {
    run_batch(*b.engine, random_prompts(a.batch_size, a.input_len, vocab, a.engine.seed + 1000 + uint64_t(i)),
              a.output_len, a.engine, "latency warm-up");
  }
  std::printf("%s on %s: batch %lld x (%lld in, %lld out)\n", b.model_name.c_str(), b.card.c_str(),
              static_cast<long long>(a.batch_size), static_cast<long long>(a.input_len),
              static_cast<long long>(a.output_len));
  std::printf("%6s %14s %12s %14s %14s\n", "iter", "latency ms", "TTFT ms", "per token ms", "output tok/s");
  std::vector<double> latency, ttft, tpot;
  nlohmann::json iterations = nlohmann::json::array();
  for (int64_t i = 0; i < a.num_iters; ++i) {
    // New prompts every iteration: no prefix-cache hit between them.
    const Iteration it = measure(run_batch(*b.engine, random_prompts(a.batch_size, a.input_len, vocab, a.engine.seed + uint64_t(i)),
                                           a.output_len, a.engine, "latency"));
    const double tok_s = double(a.batch_size * a.output_len) / it.latency_s;
    std::printf("%6lld %14.2f %12.2f %14.3f %14.1f\n", static_cast<long long>(i), 1e3 * it.latency_s, 1e3 * it.ttft_s,
                1e3 * it.tpot_s, tok_s);
    latency.push_back(it.latency_s);
    ttft.push_back(it.ttft_s);
    tpot.push_back(it.tpot_s);
    iterations.push_back({{"latency_s", it.latency_s}, {"ttft_mean_s", it.ttft_s}, {"tpot_mean_s", it.tpot_s},
                          {"output_tokens_per_s", tok_s}});
  }
  std::printf("%6s %14.2f %12.2f %14.3f\n", "mean", 1e3 * mean(latency), 1e3 * mean(ttft), 1e3 * mean(tpot));
  std::printf("%6s %14.2f %12.2f %14.3f\n", "p50", 1e3 * percentile(latency, 50), 1e3 * percentile(ttft, 50),
              1e3 * percentile(tpot, 50));
  std::printf("%6s %14.2f %12.2f %14.3f\n", "p90", 1e3 * percentile(latency, 90), 1e3 * percentile(ttft, 90),
              1e3 * percentile(tpot, 90));

  nlohmann::json doc = result_header("latency", b, a.engine);
  doc["results"] = {{"batch_size", a.batch_size},
                    {"input_len", a.input_len},
                    {"output_len", a.output_len},
                    {"num_iters", a.num_iters},
                    {"num_warmup", a.num_warmup},
                    {"latency_mean_s", mean(latency)},
                    {"latency_p50_s", percentile(latency, 50)},
                    {"latency_p90_s", percentile(latency, 90)},
                    {"ttft_mean_s", mean(ttft)},
                    {"tpot_mean_s", mean(tpot)},
                    {"iterations", iterations}};
  write_result(doc, a.engine.results_dir);
}

}  // namespace

void register_bench_latency(CLI::App& bench) {
  auto args = std::make_shared<LatencyArgs>();
  auto* cmd = bench.add_subcommand("latency", "One batch at a time: latency, time to first token, time per token");
  add_bench_engine_options(*cmd, args->engine);
  cmd->add_option("--batch-size", args->batch_size, "Requests in the batch")->check(CLI::PositiveNumber);
  cmd->add_option("--input-len", args->input_len, "Prompt tokens per request")->check(CLI::PositiveNumber);
  cmd->add_option("--output-len", args->output_len, "Generated tokens per request")->check(CLI::PositiveNumber);
  cmd->add_option("--num-iters", args->num_iters, "Measured batches")->check(CLI::PositiveNumber);
  cmd->add_option("--num-warmup", args->num_warmup, "Batches run first and not measured")->check(CLI::NonNegativeNumber);
  cmd->callback([args] { run_latency(*args); });
}

}  // namespace mlaserve::cli
