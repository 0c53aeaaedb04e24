// `mlaserve generate`: prompt token ids in, a greedy or sampled continuation out.
//   mlaserve generate --model DIR --prompt-ids 5,17,9 --max-tokens 24 --temperature 0 --output json
// prints one JSON object {"ids": [...], "finish_reason", "prompt_tokens", "seconds"}.
#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_source.h"
#include "engine/generate.h"

namespace mlaserve::cli {
namespace {

struct GenerateArgs {
  ModelSourceOptions source;
  std::vector<int32_t> prompt_ids;
  int64_t max_tokens = 16;
  float temperature = 0.0f;
  int64_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  uint64_t seed = 0;
  bool ignore_eos = false;
  std::string output = "text";
};

void run_generate(const GenerateArgs& a) {
  DeepSeekModel model = load_model(a.source);
  GenerateOptions opt;
  opt.max_tokens = a.max_tokens;
  opt.sampling = ops::SamplingOptions{a.temperature, a.top_k, a.top_p, a.min_p};
  opt.seed = a.seed;
  if (!a.ignore_eos) {
    for (int64_t id : model.config().eos_token_ids) opt.stop_token_ids.push_back(static_cast<int32_t>(id));
  }
  auto start = std::chrono::steady_clock::now();
  GenerateResult r = generate(model, a.prompt_ids, opt);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (a.output == "json") {
    nlohmann::json j = {{"ids", r.ids}, {"finish_reason", r.finish_reason},
                        {"prompt_tokens", a.prompt_ids.size()}, {"seconds", seconds}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("prompt (%zu tokens):", a.prompt_ids.size());
  for (int32_t id : a.prompt_ids) std::printf(" %d", id);
  std::printf("\ngenerated (%zu tokens, %s, %.3f s):", r.ids.size(), r.finish_reason.c_str(), seconds);
  for (int32_t id : r.ids) std::printf(" %d", id);
  std::printf("\n");
}

}  // namespace

void register_generate(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate a continuation of a prompt");
  add_model_source_options(*cmd, args->source);
  cmd->add_option("--prompt-ids", args->prompt_ids, "Prompt token ids, comma separated")->delimiter(',')->required();
  cmd->add_option("--max-tokens", args->max_tokens, "Tokens to generate")->check(CLI::NonNegativeNumber);
  cmd->add_option("--temperature", args->temperature, "0: greedy")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", args->top_k, "0: off")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", args->top_p, "1: off")->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--min-p", args->min_p, "0: off")->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--seed", args->seed, "Sampling seed");
  cmd->add_flag("--ignore-eos", args->ignore_eos, "Do not stop at the end-of-sequence token");
  cmd->add_option("--output", args->output, "text or json")->check(CLI::IsMember({"text", "json"}));
  cmd->callback([args] { run_generate(*args); });
}

}  // namespace mlaserve::cli
