// `mlaserve bench throughput` and `mlaserve bench latency`: the whole engine (scheduler, model,
// sampler) on random token ids, driven on the calling thread; tables on stdout, a progress line
// on stderr for long runs, JSON (card or "cpu", date, command, options, results) under
// --results-dir. The pieces both commands share live here.
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/model_source.h"
#include "dist/context.h"
#include "engine/deepseek_runner.h"
#include "engine/engine.h"
#include "loadgen/stats.h"

namespace mlaserve::cli {

struct BenchEngineArgs {
  ModelSourceOptions source;
  int64_t max_num_batched_tokens = 2048;
  int64_t max_num_seqs = 256;
  int32_t num_blocks = 0;               // 0: from GPU memory (cuda), or what the run needs (cpu)
  double gpu_memory_utilization = 0.9;
  double workspace_gib = 4.0;           // GPU memory kept for activations besides the cache
  bool no_prefix_caching = false;
  float temperature = 0.0f;             // 0: greedy
  uint64_t seed = 0;                    // prompts and sampling
  bool profile = false;                 // time the engine's phases and the model's regions
  bool profile_host = false;            // time the engine's host phases only (no waits added)
  bool enforce_eager = false;           // no CUDA graphs for decode steps
  std::string results_dir = "bench/results";
  dist::LaunchOptions dist;             // --tensor-parallel-size, --pipeline-parallel-size, ...
};

void add_bench_engine_options(CLI::App& cmd, BenchEngineArgs& args);

// The model, its runner and an engine over them.
struct BenchEngine {
  std::unique_ptr<dist::DistContext> dist;  // split across GPUs: this process's rank (outlives the rest)
  std::unique_ptr<DeepSeekModel> model;
  std::unique_ptr<ModelRunner> runner;
  std::unique_ptr<Engine> engine;
  std::string card;        // "cpu" or the GPU's name, lower case with dashes
  std::string model_name;  // the checkpoint directory or the dummy preset/config
};

// `blocks_needed` is the cache the run needs on the CPU when --num-blocks is not given. With the
// model split across GPUs, only rank 0 gets an engine; every other rank runs rank 0's steps
// inside this call and gets a BenchEngine without one.
BenchEngine make_bench_engine(const BenchEngineArgs& args, int32_t blocks_needed);

// `count` prompts of `length` random token ids in [0, vocab).
std::vector<std::vector<int32_t>> random_prompts(int64_t count, int64_t length, int64_t vocab, uint64_t seed);

// When each request of a batch produced its first and last token.
struct RequestTiming {
  double first_token_s = 0;  // since submission
  double last_token_s = 0;
  int64_t output_tokens = 0;
};

// Submits every prompt at once (each generating exactly output_len tokens) and steps the engine
// until all finish; `label` names the run on the progress line.
std::vector<RequestTiming> run_batch(Engine& engine, const std::vector<std::vector<int32_t>>& prompts,
                                     int64_t output_len, const BenchEngineArgs& args, const std::string& label);

// {"benchmark", "card", "date", "command", "model", "options"}: the common head of a result file;
// with --profile also "profile" (the engine's host phases and the model's regions, also printed).
nlohmann::json result_header(const std::string& benchmark, const BenchEngine& bench, const BenchEngineArgs& args);

// Writes DIR/<benchmark>_<card>_<UTC stamp>.json, prints its path and returns it.
std::string write_result(const nlohmann::json& doc, const std::string& results_dir);

// The command line as the process received it, and the UTC time in a strftime format.
std::string command_line();
std::string utc_now(const char* format);

using loadgen::mean;
using loadgen::percentile;  // p in [0, 100], linear interpolation

void register_bench_throughput(CLI::App& bench);
void register_bench_latency(CLI::App& bench);
void register_bench_serve(CLI::App& bench);  // cmd_bench_serve.cc: a client against a running server

}  // namespace mlaserve::cli
