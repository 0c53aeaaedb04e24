// Where a command's model comes from: a checkpoint directory (--model DIR) or dummy weights at
// the shapes of a preset or a config.json (--load-format dummy --preset NAME | --config FILE).
// Shared by generate, serve and bench so that every command reads models the same way.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

#include "dist/context.h"
#include "model/model.h"

namespace mlaserve::cli {

struct ModelSourceOptions {
  std::string model_dir;             // checkpoint directory
  std::string load_format = "auto";  // auto | safetensors | dummy
  std::string preset;                // dummy: a preset name
  std::string config_path;           // dummy: a config.json
  std::optional<int64_t> num_layers; // dummy: num_hidden_layers instead of the preset's or config's
  std::string fp8_mode = "dequant";  // dequant | w8a8
  std::string quantization = "none"; // none | fp8: block-FP8 weights at load (model/quantize_fp8.h)
  std::string attention_form = "auto";
  std::string kv_cache_layout = "latent";  // latent | mha (KvCacheLayout)
  uint64_t seed = 0;                 // dummy weights
  std::string device = "cpu";        // cpu | cuda
};

// Adds --model, --load-format, --preset, --config, --num-layers, --fp8-mode, --quantization,
// --attention-form, --kv-cache-layout, --device.
void add_model_source_options(CLI::App& cmd, ModelSourceOptions& options);

// What every rank of a split model must load alike, for the rendezvous's fingerprint
// (dist::LaunchOptions::run_fingerprint): a hash of the config.json read (a checkpoint's, or the
// dummy weights' preset or file), and the options that change the weights or their kernels. Not
// the checkpoint's path: nodes may mount it at different places.
std::string model_fingerprint(const ModelSourceOptions& options);

// True when `options` ask for dummy weights (--load-format dummy, or auto without --model).
bool uses_dummy_weights(const ModelSourceOptions& options);

// The config of dummy weights: the preset or config.json, with --num-layers layers when given
// (the first first_k_dense_replace layers stay dense, as in the full model, so that N layers of
// DeepSeek-V3 are 3 dense + N - 3 MoE). Fails on N < 1 and on --num-layers without dummy weights.
DeepSeekConfig dummy_config(const ModelSourceOptions& options);

// With `dist` (a model split across GPUs), this rank's share only (dist/partition.h).
DeepSeekModel load_model(const ModelSourceOptions& options, dist::DistContext* dist = nullptr);

}  // namespace mlaserve::cli
