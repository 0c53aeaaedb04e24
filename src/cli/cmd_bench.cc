#include "cli/cmd_bench.h"
#include "cli/dist_options.h"
#include "dist/distributed_runner.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <random>

#include "cli/commands.h"
#include "core/logging.h"
#include "core/new_file.h"
#include "kv/cache_sizing.h"
#ifdef MLASERVE_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace mlaserve::cli {
namespace {

using Clock = std::chrono::steady_clock;

#ifdef MLASERVE_WITH_CUDA
// The GPU's name, lower case with dashes ("nvidia-h100-80gb-hbm3").
std::string gpu_name() {
  int device = 0;
  MLA_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return file_name_part(prop.name);
}
#endif

// One line on stderr, rewritten in place on a terminal, at most every 2 s (every 10 s to a file).
class Progress {
 public:
  explicit Progress(std::string label) : label_(std::move(label)), tty_(isatty(STDERR_FILENO) == 1) {}
  void update(size_t done, size_t total, int64_t tokens) {
    const auto now = Clock::now();
    if (now - last_ < std::chrono::seconds(tty_ ? 2 : 10) && done < total) return;
    if (!shown_ && done == total) return;  // a short run: no line at all
    last_ = now;
    shown_ = true;
    std::fprintf(stderr, "%s[%s] %zu/%zu requests done, %lld tokens generated, %.1f s%s", tty_ ? "\r" : "",
                 label_.c_str(), done, total, static_cast<long long>(tokens),
                 std::chrono::duration<double>(now - start_).count(), tty_ && done < total ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  std::string label_;
  bool tty_;
  bool shown_ = false;
  Clock::time_point start_ = Clock::now(), last_ = Clock::now();
};

}  // namespace

void add_bench_engine_options(CLI::App& cmd, BenchEngineArgs& a) {
  add_model_source_options(cmd, a.source);
  add_dist_options(cmd, a.dist);
  cmd.add_option("--max-num-batched-tokens", a.max_num_batched_tokens, "Token budget of one engine step")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--max-num-seqs", a.max_num_seqs, "Sequences running at once")->check(CLI::PositiveNumber);
  cmd.add_option("--num-blocks", a.num_blocks, "KV cache blocks of 64 tokens (0: from GPU memory, or what the run needs on the CPU)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--gpu-memory-utilization", a.gpu_memory_utilization, "Share of GPU memory the engine may use")
      ->check(CLI::Range(0.01, 1.0));
  cmd.add_option("--workspace-gib", a.workspace_gib, "GPU memory kept for activations besides the cache")
      ->check(CLI::NonNegativeNumber);
  cmd.add_flag("--no-prefix-caching", a.no_prefix_caching, "Turn the prefix cache off");
  cmd.add_option("--temperature", a.temperature, "Sampling temperature (0: greedy)")->check(CLI::NonNegativeNumber);
  cmd.add_option("--seed", a.seed, "Seed of the random prompts and of sampling");
  cmd.add_option("--results-dir", a.results_dir, "Where the JSON result goes");
  cmd.add_flag("--profile", a.profile,
               "Time the engine's phases and the model's regions (each step waits for the GPU)");
  cmd.add_flag("--profile-host", a.profile_host,
               "Time the engine's host phases only: adds no wait, so steps in flight stay in flight");
  cmd.add_flag("--enforce-eager", a.enforce_eager, "Run decode steps eagerly (no CUDA graphs)");
}

BenchEngine make_bench_engine(const BenchEngineArgs& a, int32_t blocks_needed) {
  BenchEngine b;
  if (a.dist.world_size() > 1) {
    dist::LaunchOptions launch = a.dist;
    launch.run_fingerprint = fmt::format("{}; max-num-seqs {} max-num-batched-tokens {}", model_fingerprint(a.source),
                                         a.max_num_seqs, a.max_num_batched_tokens);
    b.dist = dist::DistContext::start(launch);  // forks this node's ranks
  }
  b.model = std::make_unique<DeepSeekModel>(load_model(a.source, b.dist.get()));
  b.model_name = !a.source.model_dir.empty() ? a.source.model_dir
                 : !a.source.preset.empty()  ? a.source.preset
                                             : a.source.config_path;
  int32_t blocks = a.num_blocks > 0 ? a.num_blocks : blocks_needed;
  b.card = "cpu";
#ifdef MLASERVE_WITH_CUDA
  if (a.source.device == "cuda") {
    b.card = gpu_name();
    const size_t block_bytes =
        latent_block_bytes(b.model->shard().layers.size(), b.model->cache_row_dim(), b.model->activation_dtype());
    const auto workspace = static_cast<size_t>(a.workspace_gib * double(size_t{1} << 30));
    if (a.num_blocks == 0) {
      blocks = static_cast<int32_t>(
          std::min<int64_t>(num_cache_blocks_on_gpu(a.gpu_memory_utilization, workspace, block_bytes), INT32_MAX));
    }
  }
#endif
  b.model->set_stage_clock(a.profile_host);  // on every rank: the followers log theirs
  if (b.dist) {
    blocks = static_cast<int32_t>(b.dist->min_over_ranks(blocks));  // every rank's cache has the same blocks
    if (!b.dist->is_leader()) {
      dist::run_follower(*b.model, blocks, *b.dist, a.enforce_eager ? 0 : a.max_num_seqs);
      return b;
    }
    b.runner = std::make_unique<dist::DistributedRunner>(*b.model, blocks, *b.dist, a.max_num_seqs, !a.enforce_eager);
  } else {
    b.runner = std::make_unique<DeepSeekRunner>(*b.model, blocks,
                                                RunnerOptions{!a.enforce_eager, a.max_num_seqs});
  }
  EngineOptions options;
  options.scheduler = {a.max_num_batched_tokens, a.max_num_seqs, true};
  options.enable_prefix_caching = !a.no_prefix_caching;
  options.seed = a.seed;
  options.profile = a.profile || a.profile_host;
  b.model->set_profiling(a.profile || a.profile_host, /*host_clock=*/!a.profile);
  b.engine = std::make_unique<Engine>(*b.runner, options);
  MLA_LOG_INFO("engine: {} cache blocks ({} tokens), max_model_len {}, budget {} tokens, {} sequences", blocks,
               int64_t{blocks} * kCacheBlockSize, b.engine->max_model_len(), a.max_num_batched_tokens,
               a.max_num_seqs);
  const int64_t row = b.model->cache_row_dim();
  std::printf("KV cache: %s layout, %lld values per token and layer (%.1f KiB per token), %d blocks = %lld tokens\n",
              a.source.kv_cache_layout.c_str(), static_cast<long long>(row),
              static_cast<double>(latent_block_bytes(b.model->shard().layers.size(), row, b.model->activation_dtype())) /
                  kCacheBlockSize / 1024.0,
              blocks, static_cast<long long>(int64_t{blocks} * kCacheBlockSize));
  return b;
}

std::vector<std::vector<int32_t>> random_prompts(int64_t count, int64_t length, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(vocab - 1));
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(count), std::vector<int32_t>(static_cast<size_t>(length)));
  for (auto& p : prompts) {
    for (int32_t& t : p) t = id(rng);
  }
  return prompts;
}

std::vector<RequestTiming> run_batch(Engine& engine, const std::vector<std::vector<int32_t>>& prompts,
                                     int64_t output_len, const BenchEngineArgs& args, const std::string& label) {
  const auto start = Clock::now();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const std::vector<int32_t>& p : prompts) {
    SamplingParams params;
    params.max_tokens = output_len;
    params.ignore_eos = true;
    params.temperature = args.temperature;
    streams.push_back(engine.add_request({p, params, nullptr}));
  }
  std::vector<RequestTiming> timing(prompts.size());
  Progress progress(label);
  size_t done = 0;
  int64_t tokens = 0;
  while (engine.has_unfinished()) {
    engine.step();
    const double now = std::chrono::duration<double>(Clock::now() - start).count();
    for (size_t i = 0; i < streams.size(); ++i) {
      while (auto ev = streams[i]->try_next()) {
        MLA_CHECK(ev->finish_reason != FinishReason::kError, "bench request failed: {}", ev->error);
        if (ev->token_ids.empty()) continue;
        if (timing[i].output_tokens == 0) timing[i].first_token_s = now;
        timing[i].last_token_s = now;
        timing[i].output_tokens += static_cast<int64_t>(ev->token_ids.size());
        tokens += static_cast<int64_t>(ev->token_ids.size());
        if (ev->finished) ++done;
      }
    }
    progress.update(done, streams.size(), tokens);
  }
  return timing;
}

namespace {

// Prints one table of region -> total ms, ms per step and share of `whole_ms`.
nlohmann::json report_regions(const char* title, const RegionTotals& totals, double whole_ms, int64_t steps) {
  std::printf("%-22s %12s %12s %8s\n", title, "total ms", "ms/step", "share");
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [region, ms] : totals) {
    std::printf("  %-20s %12.1f %12.3f %7.1f%%\n", region.c_str(), ms, ms / double(std::max<int64_t>(steps, 1)),
                100.0 * ms / std::max(whole_ms, 1e-9));
    out[region] = ms;
  }
  return out;
}

nlohmann::json report_profile(const BenchEngine& b, bool host_clock) {
  const int64_t steps = b.engine->stats().num_steps;
  double host_ms = 0, model_ms = 0;
  for (const auto& [region, ms] : b.engine->profile()) host_ms += ms;
  for (const auto& [region, ms] : b.model->profile()) model_ms += ms;
  if (host_clock) {
    std::printf("\nhost profile over %lld steps: the host's time in each engine phase (\"wait\": for the oldest "
                "step's logits) and in queueing each model region of rank 0\n", static_cast<long long>(steps));
  } else {
    std::printf("\nprofile over %lld steps (every step waits for the GPU, so the run is slower than without "
                "--profile)\n", static_cast<long long>(steps));
  }
  nlohmann::json out;
  out["steps"] = steps;
  out["engine_ms"] = report_regions("engine phase", b.engine->profile(), host_ms, steps);
  out["model_ms"] = report_regions("model region", b.model->profile(), model_ms, steps);
  if (b.model->stage_clock_on()) {
    const RegionTotals& stage = b.model->stage_profile();
    double stage_ms = 0;
    for (const auto& [region, ms] : stage) stage_ms += ms;
    std::printf("\nrank 0's device time over its %lld forwards (stage clock: nothing waits for it)\n",
                static_cast<long long>(b.model->stage_forwards()));
    out["stage_gpu_ms"] = report_regions("stage region", stage, stage_ms, steps);
  }
  return out;
}

}  // namespace

nlohmann::json result_header(const std::string& benchmark, const BenchEngine& b, const BenchEngineArgs& a) {
  const EngineStats s = b.engine->stats();
  nlohmann::json header = {{"benchmark", benchmark},
          {"card", b.card},
          {"date", utc_now("%Y-%m-%dT%H:%M:%SZ")},
          {"command", command_line()},
          {"model", b.model_name},
          {"device", a.source.device},
          {"options",
           {{"max_num_batched_tokens", a.max_num_batched_tokens},
            {"max_num_seqs", a.max_num_seqs},
            {"num_cache_blocks", s.num_cache_blocks},
            {"kv_cache_layout", a.source.kv_cache_layout},
            {"kv_cache_tokens", int64_t{s.num_cache_blocks} * kCacheBlockSize},
            {"prefix_caching", !a.no_prefix_caching},
            {"temperature", a.temperature},
            {"cuda_graphs", !a.enforce_eager},
            {"tensor_parallel_size", a.dist.tp_size},
            {"pipeline_parallel_size", a.dist.pp_size},
            {"nnodes", a.dist.nnodes},
            {"seed", a.seed}}}};
  if (a.profile || a.profile_host) header["profile"] = report_profile(b, !a.profile);
  return header;
}

// Linux: /proc/self/cmdline.
std::string command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!raw.empty() && raw.back() == '\0') raw.pop_back();
  std::replace(raw.begin(), raw.end(), '\0', ' ');
  return raw;
}

std::string utc_now(const char* format) {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), format, std::gmtime(&now));
  return buf;
}

std::string write_result(const nlohmann::json& doc, const std::string& results_dir) {
  const std::string stem = doc.at("benchmark").get<std::string>() + "_" + doc.at("card").get<std::string>() + "_" +
                           utc_now("%Y%m%d-%H%M%S");
  const std::string path = write_new_file(results_dir, stem, "json", doc.dump(2) + "\n");
  std::printf("wrote %s\n", path.c_str());
  return path;
}

void register_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmark the engine on random prompts");
  bench->require_subcommand(1);
  register_bench_throughput(*bench);
  register_bench_latency(*bench);
  register_bench_serve(*bench);
}

}  // namespace mlaserve::cli
