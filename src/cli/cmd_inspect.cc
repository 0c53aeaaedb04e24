// `mlaserve inspect`: what a model is, without loading its weights.
//
//   mlaserve inspect --preset deepseek-v3          the embedded config of a released model
//   mlaserve inspect --model DIR [--output json]   DIR/config.json and the checkpoint's tensors
//
// Prints the parsed config's summary (layers, heads, MoE layers, softmax scale, KV-cache bytes
// per token, FP8 or not) and, for a directory, the tensor count, total bytes and dtypes, as
// aligned text or as one JSON object.
#include <cstdio>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "model/config.h"
#include "model/presets.h"
#include "model/safetensors.h"

namespace mlaserve::cli {
namespace {

struct InspectOptions {
  std::string preset;     // a preset name, or empty
  std::string model_dir;  // a checkpoint directory, or empty
  std::string output = "text";
};

// What the checkpoint directory holds (only for --model).
struct CheckpointSummary {
  size_t tensors = 0;
  size_t bytes = 0;
  std::map<std::string, size_t> dtypes;  // dtype name -> tensor count
};

CheckpointSummary summarize(const Checkpoint& checkpoint) {
  CheckpointSummary s;
  for (const std::string& name : checkpoint.names()) {
    const TensorInfo& info = checkpoint.info(name);
    ++s.tensors;
    s.bytes += info.end - info.begin;
    ++s.dtypes[std::string(dtype_name(info.dtype))];
  }
  return s;
}

// bf16 latent rows: kv_cache_dim values of 2 bytes in every layer (MODEL_SPEC §4.1).
int64_t kv_bytes_per_token(const DeepSeekConfig& c) { return c.kv_cache_dim * 2 * c.num_hidden_layers; }

std::string weights_text(const DeepSeekConfig& c) {
  if (!c.fp8) return "bf16 (no quantization_config)";
  return fmt::format("fp8 e4m3, {}x{} blocks, {} scales", c.fp8->block_n, c.fp8->block_k,
                     c.fp8->scale_format == ScaleFormat::kUE8M0 ? "ue8m0" : "fp32");
}

void print_text(const std::string& source, const DeepSeekConfig& c, const CheckpointSummary* ckpt) {
  int64_t moe = c.num_moe_layers();
  fmt::print("model:            {}\n", source);
  fmt::print("family:           {}\n", family_name(c.family));
  fmt::print("layers:           {} ({} dense, {} MoE){}\n", c.num_hidden_layers, c.num_hidden_layers - moe,
             moe, c.num_nextn_predict_layers > 0 ? fmt::format(" + {} MTP", c.num_nextn_predict_layers) : "");
  fmt::print("hidden size:      {}\n", c.hidden_size);
  fmt::print("heads:            {} (qk {} = {} nope + {} rope, v {})\n", c.num_attention_heads, c.qk_head_dim,
             c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim);
  fmt::print("q_lora_rank:      {}\n",
             c.q_lora_rank ? fmt::format("{}", *c.q_lora_rank) : "none (single q_proj)");
  fmt::print("kv_lora_rank:     {}\n", c.kv_lora_rank);
  if (c.n_routed_experts > 0) {
    fmt::print(
        "experts:          {} routed + {} shared, {} per token, {} / {}, {} groups (top {}), scale {}\n",
        c.n_routed_experts, c.n_shared_experts, c.num_experts_per_tok, topk_method_name(c.topk_method),
        scoring_func_name(c.scoring_func), c.n_group, c.topk_group, c.routed_scaling_factor);
  }
  fmt::print("vocab:            {}\n", c.vocab_size);
  fmt::print("rope:             {}theta {}\n",
             c.rope.yarn ? fmt::format("yarn factor {}, original {}, ", c.rope.factor,
                                       c.rope.original_max_position_embeddings)
                         : "",
             c.rope.theta);
  fmt::print("softmax scale:    {:.7f}\n", c.softmax_scale);
  fmt::print("KV bytes/token:   {} ({} values x 2 bytes x {} layers)\n", kv_bytes_per_token(c),
             c.kv_cache_dim, c.num_hidden_layers);
  fmt::print("weights:          {}\n", weights_text(c));
  if (ckpt != nullptr) {
    std::string dtypes;
    for (const auto& [dtype, count] : ckpt->dtypes) {
      dtypes += fmt::format("{}{} {}", dtypes.empty() ? "" : ", ", count, dtype);
    }
    fmt::print("tensors:          {} ({}), {} bytes ({:.2f} GiB)\n", ckpt->tensors, dtypes, ckpt->bytes,
               static_cast<double>(ckpt->bytes) / (1024.0 * 1024.0 * 1024.0));
  }
}

void print_json(const std::string& source, const DeepSeekConfig& c, const CheckpointSummary* ckpt) {
  nlohmann::ordered_json j;
  j["model"] = source;
  j["family"] = family_name(c.family);
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_dense_layers"] = c.num_hidden_layers - c.num_moe_layers();
  j["num_moe_layers"] = c.num_moe_layers();
  j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
  j["hidden_size"] = c.hidden_size;
  j["num_attention_heads"] = c.num_attention_heads;
  j["q_lora_rank"] = c.q_lora_rank ? nlohmann::ordered_json(*c.q_lora_rank) : nlohmann::ordered_json(nullptr);
  j["kv_lora_rank"] = c.kv_lora_rank;
  j["qk_head_dim"] = c.qk_head_dim;
  j["v_head_dim"] = c.v_head_dim;
  j["vocab_size"] = c.vocab_size;
  j["n_routed_experts"] = c.n_routed_experts;
  j["n_shared_experts"] = c.n_shared_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["topk_method"] = topk_method_name(c.topk_method);
  j["scoring_func"] = scoring_func_name(c.scoring_func);
  j["rope_yarn"] = c.rope.yarn;
  j["rope_factor"] = c.rope.factor;
  j["softmax_scale"] = c.softmax_scale;
  j["kv_cache_dim"] = c.kv_cache_dim;
  j["kv_bytes_per_token"] = kv_bytes_per_token(c);
  j["fp8"] = c.fp8.has_value();
  if (ckpt != nullptr) {
    j["tensors"] = ckpt->tensors;
    j["tensor_bytes"] = ckpt->bytes;
    j["tensor_dtypes"] = ckpt->dtypes;
  }
  // replace: a directory name that is not UTF-8 must not abort the output.
  std::printf("%s\n", j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
}

void run_inspect(const InspectOptions& options) {
  if (options.preset.empty() == options.model_dir.empty()) {
    MLA_FAIL("inspect: give exactly one of --preset NAME or --model DIR");
  }
  if (!options.preset.empty()) {
    DeepSeekConfig config = preset_config(options.preset);
    std::string source = "preset " + options.preset;
    options.output == "json" ? print_json(source, config, nullptr) : print_text(source, config, nullptr);
    return;
  }
  DeepSeekConfig config = load_deepseek_config(options.model_dir);
  CheckpointSummary ckpt = summarize(Checkpoint::open(options.model_dir));
  options.output == "json" ? print_json(options.model_dir, config, &ckpt)
                           : print_text(options.model_dir, config, &ckpt);
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto options = std::make_shared<InspectOptions>();
  auto* cmd = app.add_subcommand("inspect", "Print a model's parsed config (and its checkpoint's tensors)");
  auto* preset = cmd->add_option("--preset", options->preset,
                                 "a released model: deepseek-v2-lite, deepseek-v2, deepseek-v3, deepseek-r1");
  auto* model =
      cmd->add_option("--model", options->model_dir, "a checkpoint directory (config.json + safetensors)");
  preset->excludes(model);
  cmd->add_option("--output", options->output, "text or json")->check(CLI::IsMember({"text", "json"}));
  cmd->callback([options] { run_inspect(*options); });
}

}  // namespace mlaserve::cli
