// Where a command's model comes from: a checkpoint directory (--model DIR) or dummy weights at
// the shapes of a preset or a config.json (--load-format dummy --preset NAME | --config FILE).
// Shared by generate, serve and bench so that every command reads models the same way.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "dist/context.h"
#include "model/model.h"

namespace mlaserve::cli {

struct ModelSourceOptions {
  std::string model_dir;             // checkpoint directory
  std::string load_format = "auto";  // auto | safetensors | dummy
  std::string preset;                // dummy: a preset name
  std::string config_path;           // dummy: a config.json
  std::string fp8_mode = "dequant";  // dequant | w8a8
  std::string quantization = "none"; // none | fp8: block-FP8 weights at load (model/quantize_fp8.h)
  std::string attention_form = "auto";
  std::string kv_cache_layout = "latent";  // latent | mha (KvCacheLayout)
  uint64_t seed = 0;                 // dummy weights
  std::string device = "cpu";        // cpu | cuda
};

// Adds --model, --load-format, --preset, --config, --fp8-mode, --quantization, --attention-form,
// --kv-cache-layout, --device.
void add_model_source_options(CLI::App& cmd, ModelSourceOptions& options);

// With `dist` (a model split across GPUs), this rank's share only (dist/partition.h).
DeepSeekModel load_model(const ModelSourceOptions& options, dist::DistContext* dist = nullptr);

}  // namespace mlaserve::cli
