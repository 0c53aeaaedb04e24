// `mlaserve serve`: the OpenAI-compatible HTTP server (src/server) on the engine.
//   mlaserve serve MODEL_DIR [--port 8000] [--api-key KEY]
//   mlaserve serve --load-format dummy --preset deepseek-v2-lite --device cuda --tokenizer DIR
//   mlaserve serve tests/data/tiny-v3 --tokenizer tests/data/tiny-tokenizer --port 0
// The tokenizer comes from --tokenizer DIR or the model directory; without one, only token-id
// prompts on /v1/completions are served. The model's name in the API is --served-model-name,
// by default the model directory's last component (or the preset's name). --port 0 picks a
// free port; the line "mlaserve: listening on http://HOST:PORT" on stdout names it.
// Split over GPUs (--tensor-parallel-size, --pipeline-parallel-size, --nnodes ...: dist/context.h)
// rank 0 alone loads the tokenizer, schedules and serves HTTP; the other ranks follow its step
// plans until it stops.
#include <algorithm>
#include <csignal>
#include <filesystem>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/dist_options.h"
#include "cli/model_source.h"
#include "core/logging.h"
#include "dist/distributed_runner.h"
#include "engine/deepseek_runner.h"
#include "engine/engine.h"
#include "engine/tokenizer_text_decoder.h"
#include "kv/cache_sizing.h"
#include "kv/latent_cache.h"
#include "server/http_server.h"
#include "tokenizer/tokenizer.h"

namespace mlaserve::cli {
namespace {

struct ServeArgs {
  ModelSourceOptions source;
  std::string tokenizer_dir;
  server::ServerOptions server;
  std::string reasoning = "auto";
  int64_t max_num_batched_tokens = 2048;
  int64_t max_num_seqs = 256;
  int64_t max_model_len = 0;
  int32_t num_blocks = 0;
  double kv_cache_gib = 1.0;            // CPU: cache size when --num-blocks is not given
  double gpu_memory_utilization = 0.9;  // GPU
  double workspace_gib = 4.0;           // GPU memory kept for activations besides the cache
  bool no_prefix_caching = false;
  uint64_t seed = 0;
  dist::LaunchOptions dist;             // --tensor-parallel-size, --pipeline-parallel-size, ...
};

std::optional<tokenizer::Tokenizer> load_tokenizer(const ServeArgs& a) {
  std::string dir = a.tokenizer_dir;
  if (dir.empty() && !a.source.model_dir.empty() && std::filesystem::exists(a.source.model_dir + "/tokenizer.json")) {
    dir = a.source.model_dir;
  }
  if (dir.empty()) {
    MLA_LOG_WARN("no tokenizer (give --tokenizer DIR): only token-id prompts on /v1/completions are served");
    return std::nullopt;
  }
  return tokenizer::Tokenizer::load(dir);
}

std::string default_model_name(const ModelSourceOptions& s) {
  if (!s.model_dir.empty()) {
    std::filesystem::path p(s.model_dir);
    if (!p.has_filename()) p = p.parent_path();  // "dir/"
    return p.filename().string();
  }
  return !s.preset.empty() ? s.preset : std::filesystem::path(s.config_path).stem().string();
}

int32_t cache_blocks(const ServeArgs& a, const DeepSeekModel& model) {
  if (a.num_blocks > 0) return a.num_blocks;
  const size_t block_bytes =  // this rank's layers (a pipeline stage holds a range)
      latent_block_bytes(model.shard().layers.size(), model.cache_row_dim(), model.activation_dtype());
  if (a.source.device == "cuda") {
    const auto workspace = static_cast<size_t>(a.workspace_gib * double(size_t{1} << 30));
    return static_cast<int32_t>(
        std::min<int64_t>(num_cache_blocks_on_gpu(a.gpu_memory_utilization, workspace, block_bytes), INT32_MAX));
  }
  const auto blocks = static_cast<int64_t>(a.kv_cache_gib * double(size_t{1} << 30) / double(block_bytes));
  MLA_CHECK(blocks >= 1, "--kv-cache-gib {} holds no cache block of {} bytes", a.kv_cache_gib, block_bytes);
  return static_cast<int32_t>(std::min<int64_t>(blocks, INT32_MAX));
}

void run_serve(ServeArgs a) {
  std::unique_ptr<dist::DistContext> dist;
  if (a.dist.world_size() > 1) {
    a.dist.run_fingerprint = fmt::format("{}; max-num-seqs {} max-num-batched-tokens {} max-model-len {}",
                                         model_fingerprint(a.source), a.max_num_seqs, a.max_num_batched_tokens,
                                         a.max_model_len);
    dist = dist::DistContext::start(a.dist);  // forks this node's ranks
  }
  DeepSeekModel model = load_model(a.source, dist.get());
  int32_t blocks = cache_blocks(a, model);
  std::unique_ptr<ModelRunner> runner;
  if (dist) {
    blocks = static_cast<int32_t>(dist->min_over_ranks(blocks));  // every rank's cache has the same blocks
    if (!dist->is_leader()) {
      // Ctrl-C (and a service manager's SIGTERM to the whole group) reach every rank: rank 0
      // drains its requests, which needs the followers, then stops them (or they see its socket
      // close), so they leave both signals to it.
      std::signal(SIGINT, SIG_IGN);
      std::signal(SIGTERM, SIG_IGN);
      dist::run_follower(model, blocks, *dist, a.max_num_seqs);  // until rank 0's engine stops
      return;
    }
    runner = std::make_unique<dist::DistributedRunner>(model, blocks, *dist, a.max_num_seqs, /*cuda_graphs=*/true);
  } else {
    runner = std::make_unique<DeepSeekRunner>(model, blocks);
  }
  const std::optional<tokenizer::Tokenizer> tok = load_tokenizer(a);
  std::optional<TokenizerTextDecoderFactory> text;
  if (tok) text.emplace(*tok);

  EngineOptions options;
  options.scheduler = {a.max_num_batched_tokens, a.max_num_seqs, true};
  options.enable_prefix_caching = !a.no_prefix_caching;
  options.max_model_len = a.max_model_len;
  options.seed = a.seed;
  Engine engine(*runner, options, text ? &*text : nullptr);
  MLA_LOG_INFO("engine: {} cache blocks ({} tokens), max_model_len {}, budget {} tokens, {} sequences", blocks,
               int64_t{blocks} * kCacheBlockSize, engine.max_model_len(), a.max_num_batched_tokens, a.max_num_seqs);

  if (a.server.model_name.empty()) a.server.model_name = default_model_name(a.source);
  a.server.reasoning = a.reasoning == "on"    ? server::ReasoningMode::kOn
                       : a.reasoning == "off" ? server::ReasoningMode::kOff
                                              : server::ReasoningMode::kAuto;
  a.server.limits.max_logprobs = options.max_logprobs;
  server::ServingState state(engine, tok ? &*tok : nullptr, a.server);
  if (dist) state.set_broken_check([d = dist.get()] { return d->failed() ? d->failure() : std::string(); });
  engine.start();
  server::HttpServer(state).run();
}

}  // namespace

void register_serve(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (/v1/chat/completions, /v1/completions, ...)");
  add_model_source_options(*cmd, args->source);
  add_dist_options(*cmd, args->dist);
  cmd->add_option("model_dir", args->source.model_dir, "Checkpoint directory (the same as --model)");
  cmd->add_option("--tokenizer", args->tokenizer_dir, "Directory with tokenizer.json (default: the model's)");
  server::ServerOptions& s = args->server;
  cmd->add_option("--host", s.host, "Address to bind (default 127.0.0.1: this machine only)");
  cmd->add_option("--port", s.port, "Port (0: a free one, printed at start)");
  cmd->add_option("--api-key", s.api_key, "Require 'Authorization: Bearer KEY' on every route but /health");
  cmd->add_option("--served-model-name", s.model_name, "The model's name in the API (default: the directory's name)");
  cmd->add_option("--max-body-bytes", s.max_body_bytes, "Largest request body (413 beyond)")->check(CLI::PositiveNumber);
  cmd->add_option("--max-waiting-requests", s.max_waiting_requests,
                  "Requests (choices) admitted but not yet running before new ones get 503")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--http-threads", s.http_threads, "Threads serving connections")->check(CLI::Range(1, 256));
  cmd->add_option("--write-timeout", s.write_timeout_s,
                  "Seconds a response write may wait for a client that does not read before the connection closes "
                  "and its generation stops")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--drain-timeout", s.drain_timeout_s, "Seconds in-flight requests may take after SIGTERM")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--reasoning", args->reasoning,
                  "reasoning_content for <think>...</think>: auto (when the chat template has <think>), on, off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--max-num-batched-tokens", args->max_num_batched_tokens, "Token budget of one engine step")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-num-seqs", args->max_num_seqs, "Sequences running at once")->check(CLI::PositiveNumber);
  cmd->add_option("--max-model-len", args->max_model_len, "Longest prompt + output (0: the model's, capped by the cache)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--num-blocks", args->num_blocks, "KV cache blocks of 64 tokens (0: from --kv-cache-gib or GPU memory)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--kv-cache-gib", args->kv_cache_gib, "CPU: KV cache size when --num-blocks is 0")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--gpu-memory-utilization", args->gpu_memory_utilization, "GPU: share of memory the engine may use")
      ->check(CLI::Range(0.01, 1.0));
  cmd->add_option("--workspace-gib", args->workspace_gib, "GPU: memory kept for activations besides the cache")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--no-prefix-caching", args->no_prefix_caching, "Turn the prefix cache off");
  cmd->add_option("--seed", args->seed, "Seed of requests that give none");
  cmd->callback([args] { run_serve(*args); });
}

}  // namespace mlaserve::cli
