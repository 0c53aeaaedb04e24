// `mlaserve generate`: a prompt in (token ids, text, or a chat message), a greedy or sampled
// continuation out.
//   mlaserve generate --model DIR --prompt-ids 5,17,9 --max-tokens 24 --temperature 0 --output json
// prints one JSON object {"ids": [...], "finish_reason", "prompt_tokens", "seconds"} (plus
// "text" when a tokenizer is known). --prompt TEXT encodes with the tokenizer (--tokenizer DIR,
// default the model directory); --chat wraps the text as one user message through the model's
// chat template.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_source.h"
#include "engine/generate.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace mlaserve::cli {
namespace {

struct GenerateArgs {
  ModelSourceOptions source;
  std::vector<int32_t> prompt_ids;
  std::string prompt_text;
  std::string tokenizer_dir;
  bool chat = false;
  int64_t max_tokens = 16;
  float temperature = 0.0f;
  int64_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  uint64_t seed = 0;
  bool ignore_eos = false;
  std::string output = "text";
};

std::optional<tokenizer::Tokenizer> load_tokenizer(const GenerateArgs& a) {
  std::string dir = a.tokenizer_dir;
  if (dir.empty() && !a.source.model_dir.empty() && std::filesystem::exists(a.source.model_dir + "/tokenizer.json")) {
    dir = a.source.model_dir;
  }
  MLA_CHECK(!dir.empty() || a.prompt_text.empty(), "--prompt needs a tokenizer: give --tokenizer DIR");
  if (dir.empty()) return std::nullopt;
  return tokenizer::Tokenizer::load(dir);
}

std::vector<int32_t> prompt_ids(const GenerateArgs& a, const std::optional<tokenizer::Tokenizer>& tok) {
  MLA_CHECK(a.prompt_ids.empty() != a.prompt_text.empty(), "give exactly one of --prompt-ids and --prompt");
  MLA_CHECK(!a.chat || !a.prompt_text.empty(), "--chat applies the chat template to --prompt text");
  if (!a.prompt_ids.empty()) return a.prompt_ids;
  if (!a.chat) return tok->encode(a.prompt_text, /*add_special_tokens=*/true);
  nlohmann::json messages = nlohmann::json::array({{{"role", "user"}, {"content", a.prompt_text}}});
  tokenizer::ChatTemplate::RenderOptions render;
  render.add_generation_prompt = true;
  // The rendered template carries BOS itself.
  return tok->encode(tokenizer::ChatTemplate::from_tokenizer(*tok).render(messages, render), false);
}

void run_generate(const GenerateArgs& a) {
  const std::optional<tokenizer::Tokenizer> tok = load_tokenizer(a);
  const std::vector<int32_t> prompt = prompt_ids(a, tok);
  DeepSeekModel model = load_model(a.source);
  GenerateOptions opt;
  opt.max_tokens = a.max_tokens;
  opt.sampling = ops::SamplingOptions{a.temperature, a.top_k, a.top_p, a.min_p};
  opt.seed = a.seed;
  if (!a.ignore_eos) {
    for (int64_t id : model.config().eos_token_ids) opt.stop_token_ids.push_back(static_cast<int32_t>(id));
  }
  auto start = std::chrono::steady_clock::now();
  GenerateResult r = generate(model, prompt, opt);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (a.output == "json") {
    nlohmann::json j = {{"ids", r.ids}, {"finish_reason", r.finish_reason},
                        {"prompt_tokens", prompt.size()}, {"seconds", seconds}};
    if (tok) j["text"] = tok->decode(r.ids, /*skip_special_tokens=*/true);
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("prompt (%zu tokens):", prompt.size());
  for (int32_t id : prompt) std::printf(" %d", id);
  std::printf("\ngenerated (%zu tokens, %s, %.3f s):", r.ids.size(), r.finish_reason.c_str(), seconds);
  for (int32_t id : r.ids) std::printf(" %d", id);
  std::printf("\n");
  if (tok) std::printf("text: %s\n", nlohmann::json(tok->decode(r.ids, true)).dump().c_str());
}

}  // namespace

void register_generate(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate a continuation of a prompt");
  add_model_source_options(*cmd, args->source);
  cmd->add_option("--prompt-ids", args->prompt_ids, "Prompt token ids, comma separated")->delimiter(',');
  cmd->add_option("--prompt", args->prompt_text, "Prompt text (encoded with the tokenizer, BOS added)");
  cmd->add_flag("--chat", args->chat, "Render --prompt as a user message through the chat template");
  cmd->add_option("--tokenizer", args->tokenizer_dir, "Directory with tokenizer.json (default: the model's)");
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
