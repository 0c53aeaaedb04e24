#include "cli/model_source.h"

#include <fstream>
#include <iterator>

#include "core/device_cache.h"
#include "core/logging.h"
#include "core/memory.h"
#include "dist/partition.h"
#include "dist/step_runner.h"
#include "model/dummy.h"
#include "model/loader.h"
#include "model/presets.h"
#include "model/quantize_fp8.h"
#include "model/safetensors.h"

namespace mlaserve::cli {

void add_model_source_options(CLI::App& cmd, ModelSourceOptions& o) {
  cmd.add_option("--model", o.model_dir, "Checkpoint directory (config.json + *.safetensors)");
  cmd.add_option("--load-format", o.load_format, "auto, safetensors or dummy (random weights)")
      ->check(CLI::IsMember({"auto", "safetensors", "dummy"}));
  cmd.add_option("--preset", o.preset, "Dummy weights at a preset's shapes (deepseek-v2-lite, deepseek-v3, ...)");
  cmd.add_option("--config", o.config_path, "Dummy weights at the shapes of this config.json");
  cmd.add_option("--num-layers", o.num_layers,
                 "Dummy weights: this many layers instead of the preset's or config's (the first "
                 "first_k_dense_replace stay dense)");
  cmd.add_option("--fp8-mode", o.fp8_mode, "FP8 checkpoints: dequant (weights to f32) or w8a8 (block-FP8 GEMMs)")
      ->check(CLI::IsMember({"dequant", "w8a8"}));
  cmd.add_option("--quantization", o.quantization,
                 "none, or fp8: quantise BF16 weights (checkpoint or dummy) to block FP8 at load and run W8A8; "
                 "an FP8 checkpoint keeps its own FP8 weights")
      ->check(CLI::IsMember({"none", "fp8"}));
  cmd.add_option("--attention-form", o.attention_form, "auto, mha or absorbed (for testing the two MLA forms)")
      ->check(CLI::IsMember({"auto", "mha", "absorbed"}));
  cmd.add_option("--kv-cache-layout", o.kv_cache_layout,
                 "latent (MLA's 576 values per token and layer) or mha (per-head K and V, as MHA models cache: "
                 "for comparing capacity and throughput)")
      ->check(CLI::IsMember({"latent", "mha"}));
  cmd.add_option("--weights-seed", o.seed, "Seed of dummy weights");
  cmd.add_option("--device", o.device, "cpu (f32 reference backend) or cuda (bf16 on the GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
}

std::string model_fingerprint(const ModelSourceOptions& o) {
  auto file_hash = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    MLA_CHECK(in.good(), "cannot read {}", path);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return fmt::format("{:016x}", std::hash<std::string>{}(bytes));  // the same binary runs every rank
  };
  const std::string model =
      !uses_dummy_weights(o) ? fmt::format("checkpoint config.json {}", file_hash(o.model_dir + "/config.json"))
      : !o.preset.empty()    ? fmt::format("dummy preset {}", o.preset)
                             : fmt::format("dummy config.json {}", file_hash(o.config_path));
  return fmt::format("{} layers {} weights-seed {} device {} fp8-mode {} quantization {} attention {} kv-cache {}", model,
                     o.num_layers.value_or(0), o.seed, o.device, o.fp8_mode, o.quantization, o.attention_form,
                     o.kv_cache_layout);
}

bool uses_dummy_weights(const ModelSourceOptions& o) {
  return o.load_format == "dummy" || (o.load_format == "auto" && o.model_dir.empty());
}

DeepSeekConfig dummy_config(const ModelSourceOptions& o) {
  MLA_CHECK(uses_dummy_weights(o), "--num-layers and the dummy config need --load-format dummy (a checkpoint has "
            "the layers it has)");
  MLA_CHECK(o.preset.empty() != o.config_path.empty(), "dummy weights need exactly one of --preset or --config");
  DeepSeekConfig config = o.preset.empty() ? load_deepseek_config(o.config_path) : preset_config(o.preset);
  if (o.num_layers) {
    MLA_CHECK(*o.num_layers >= 1, "--num-layers must be at least 1, got {}", *o.num_layers);
    config.num_hidden_layers = *o.num_layers;
    finalize_config(config);  // layer_is_moe and the limits again, for the new depth
  }
  return config;
}

DeepSeekModel load_model(const ModelSourceOptions& o, dist::DistContext* dist) {
  ModelOptions model_options;
  const bool gpu = o.device == "cuda";
  MLA_CHECK(!gpu || cuda_available(), "--device cuda: {}",
#ifdef MLASERVE_WITH_CUDA
            "no GPU is visible"
#else
            "this build has no CUDA backend"
#endif
  );
  model_options.device = gpu ? Device::kCUDA : Device::kCPU;
  const DType weight_dtype = gpu ? DType::kBF16 : DType::kF32;
  // Weights are read (or made) on the host, then copied to the GPU once.
  const bool quantize = o.quantization == "fp8";
  auto finish = [&](DeepSeekConfig config, ModelWeights weights) {
    if (quantize) {
      move_and_quantize_fp8(weights, model_options.device);  // one bf16 layer on the GPU at a time
    } else if (gpu) {
      move_weights(weights, Device::kCUDA);
    }
    uint64_t bytes = 0;
    for_each_tensor(weights, [&](Tensor& t) { bytes += t.nbytes(); });
    MLA_LOG_INFO("weights held here: {:.3f} GB", static_cast<double>(bytes) / 1e9);
    DeepSeekModel model(std::move(config), std::move(weights), model_options);
    // The BF16 weights that FP8 replaced (quantisation, FP8 dummies) count as free again before
    // the caller sizes the KV cache from free memory.
    if (gpu) release_idle_device_memory();
    return model;
  };
  // This rank's share of a split model, and the groups its forward pass talks to.
  auto split = [&](const DeepSeekConfig& config) -> std::optional<ShardPlan> {
    if (!dist) return std::nullopt;
    MLA_CHECK(gpu, "a model split across ranks runs one process per GPU: give --device cuda");
    model_options.shard = dist::make_shard_plan(config, dist->parallel());
    const int64_t channels = model_options.shard->expert_channels.size();
    MLA_CHECK(channels == config.moe_intermediate_size || channels % 128 == 0,
              "--expert-split channels: each rank's {} of the routed experts' {} channels is not a multiple of 128, "
              "as the GPU's expert kernels need; choose a tensor-parallel size that splits them so, or "
              "--expert-split experts",
              channels, config.moe_intermediate_size);
    model_options.tp_group = dist->tp_group();
    model_options.pp_group = dist->pp_group();
    return model_options.shard;
  };
  model_options.attention_form = o.attention_form == "mha"        ? AttentionForm::kMha
                                 : o.attention_form == "absorbed" ? AttentionForm::kAbsorbed
                                                                  : AttentionForm::kAuto;
  model_options.kv_cache_layout = o.kv_cache_layout == "mha" ? KvCacheLayout::kMha : KvCacheLayout::kLatent;
  if (uses_dummy_weights(o)) {
    DeepSeekConfig config = dummy_config(o);
    DummyOptions d;
    d.seed = o.seed;
    d.weight_dtype = weight_dtype;
    d.device = model_options.device;  // BF16 dummies are filled in place on the GPU
    d.shard = split(config);
    d.fp8 = quantize;                 // FP8 dummies on the GPU: filled in BF16, quantised there
    MLA_LOG_INFO("dummy weights: {}, {} layers ({:.2f} GB)", o.preset.empty() ? o.config_path : o.preset,
                 config.num_hidden_layers, dummy_weight_bytes(config, d) / 1e9);
    ModelWeights weights = make_dummy_weights(config, d);
    return finish(std::move(config), std::move(weights));
  }
  MLA_CHECK(!o.model_dir.empty(), "no model: give --model DIR, or --load-format dummy with --preset or --config");
  MLA_CHECK(!o.num_layers, "--num-layers is for dummy weights (--load-format dummy): a checkpoint has the layers it has");
  MLA_CHECK(o.preset.empty() && o.config_path.empty(),
            "--preset and --config give dummy weights' shapes (--load-format dummy): a checkpoint's shapes come "
            "from its own config.json");
  DeepSeekConfig config = load_deepseek_config(o.model_dir + "/config.json");
  LoadOptions load;
  load.weight_dtype = weight_dtype;
  load.shard = split(config);
  load.fp8_mode = o.fp8_mode == "w8a8" || quantize ? Fp8Mode::kW8A8 : Fp8Mode::kDequantize;
  ModelWeights weights = load_weights(Checkpoint::open(o.model_dir), config, load);
  return finish(std::move(config), std::move(weights));
}

}  // namespace mlaserve::cli
