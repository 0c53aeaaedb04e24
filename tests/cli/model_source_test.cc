// Where a command's model comes from (cli/model_source.h): --num-layers cuts or extends the
// dummy model of a preset or config.json, keeping its first first_k_dense_replace layers dense;
// bad values and a checkpoint with --num-layers, --preset or --config are refused with a message
// naming the flag.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli/model_source.h"
#include "core/error.h"
#include "model/presets.h"

namespace mlaserve::cli {
namespace {

std::string tiny_dir(const std::string& name) { return std::string(MLASERVE_SOURCE_DIR) + "/tests/data/" + name; }

ModelSourceOptions dummy_preset(const std::string& preset, std::optional<int64_t> layers) {
  ModelSourceOptions o;
  o.load_format = "dummy";
  o.preset = preset;
  o.num_layers = layers;
  return o;
}

// The message of the mlaserve::Error that fn throws ("" when it throws none).
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelSource, NumLayersParsedFromTheCommandLine) {
  for (const auto& [args, want] : std::vector<std::pair<std::string, std::optional<int64_t>>>{
           {"--load-format dummy --preset deepseek-v3 --num-layers 8", 8},
           {"--load-format dummy --preset deepseek-v3", std::nullopt}}) {
    CLI::App app;
    ModelSourceOptions o;
    add_model_source_options(app, o);
    app.parse(args, false);
    EXPECT_EQ(o.num_layers, want) << args;
  }
}

// `mlaserve bench throughput --preset deepseek-v3 --num-layers 8`: 3 dense + 5 MoE layers,
// every other shape (experts, heads, FP8 blocks) the preset's.
TEST(ModelSource, NumLayersCutsV3KeepingItsDenseLayers) {
  const DeepSeekConfig full = preset_config("deepseek-v3");
  const DeepSeekConfig cut = dummy_config(dummy_preset("deepseek-v3", 8));
  EXPECT_EQ(cut.num_hidden_layers, 8);
  EXPECT_EQ(cut.first_k_dense_replace, 3);
  EXPECT_EQ(cut.layer_is_moe, (std::vector<bool>{false, false, false, true, true, true, true, true}));
  EXPECT_EQ(cut.num_moe_layers(), 5);
  EXPECT_EQ(cut.n_routed_experts, full.n_routed_experts);
  EXPECT_EQ(cut.num_attention_heads, full.num_attention_heads);
  EXPECT_EQ(cut.hidden_size, full.hidden_size);
  EXPECT_EQ(cut.vocab_size, full.vocab_size);
  EXPECT_TRUE(cut.fp8.has_value());
  EXPECT_EQ(cut.softmax_scale, full.softmax_scale);
  EXPECT_EQ(dummy_config(dummy_preset("deepseek-v3", std::nullopt)).num_hidden_layers, 61);
  // Fewer layers than the dense prefix: all dense.
  const DeepSeekConfig two = dummy_config(dummy_preset("deepseek-v3", 2));
  EXPECT_EQ(two.layer_is_moe, (std::vector<bool>{false, false}));
}

// A config.json may also grow: tiny-v3 (3 layers, the first dense) with 5.
TEST(ModelSource, NumLayersOnAConfigFileAndTheLoadedModel) {
  ModelSourceOptions o;
  o.load_format = "dummy";
  o.config_path = tiny_dir("tiny-v3") + "/config.json";
  o.num_layers = 5;
  const DeepSeekConfig c = dummy_config(o);
  EXPECT_EQ(c.layer_is_moe, (std::vector<bool>{false, true, true, true, true}));
  o.num_layers = 2;
  const DeepSeekModel model = load_model(o);  // CPU, f32 dummy weights
  EXPECT_EQ(model.config().num_hidden_layers, 2);
  EXPECT_EQ(model.weights().layers.size(), 2u);
}

TEST(ModelSource, NumLayersRefused) {
  for (int64_t bad : {0, -3}) {
    EXPECT_NE(error_of([&] { dummy_config(dummy_preset("deepseek-v3", bad)); }).find("--num-layers must be at least 1"),
              std::string::npos)
        << bad;
  }
  EXPECT_NE(error_of([&] { dummy_config(dummy_preset("deepseek-v3", 5000)); }).find("num_hidden_layers"),
            std::string::npos);
  ModelSourceOptions ckpt;
  ckpt.model_dir = tiny_dir("tiny-v3");
  ckpt.num_layers = 2;
  EXPECT_NE(error_of([&] { load_model(ckpt); }).find("--num-layers is for dummy weights"), std::string::npos);
  EXPECT_NE(error_of([&] { dummy_config(ckpt); }).find("--load-format dummy"), std::string::npos);
}

// A checkpoint's shapes are its config.json's: a --preset or --config beside --model would be
// ignored, so it is refused.
TEST(ModelSource, PresetOrConfigWithACheckpointRefused) {
  ModelSourceOptions preset;
  preset.model_dir = tiny_dir("tiny-v3");
  preset.preset = "deepseek-v3";
  ModelSourceOptions config;
  config.model_dir = tiny_dir("tiny-v3");
  config.config_path = tiny_dir("tiny-v2") + "/config.json";
  for (const ModelSourceOptions& o : {preset, config}) {
    EXPECT_NE(error_of([&] { load_model(o); }).find("--preset and --config give dummy weights' shapes"),
              std::string::npos);
  }
  ModelSourceOptions plain;
  plain.model_dir = tiny_dir("tiny-v3");
  EXPECT_EQ(load_model(plain).config().num_hidden_layers, 3);
}

}  // namespace
}  // namespace mlaserve::cli
