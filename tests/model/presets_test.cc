// The embedded presets against the released configs of the tests, and their names.
#include "model/presets.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "released_configs.h"
#include "temp_dir.h"

namespace mlaserve {
namespace {

void expect_same_model(const DeepSeekConfig& a, const DeepSeekConfig& b) {
  EXPECT_EQ(a.family, b.family);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(a.q_lora_rank, b.q_lora_rank);
  EXPECT_EQ(a.layer_is_moe, b.layer_is_moe);
  EXPECT_EQ(a.n_routed_experts, b.n_routed_experts);
  EXPECT_EQ(a.topk_method, b.topk_method);
  EXPECT_EQ(a.fp8.has_value(), b.fp8.has_value());
  EXPECT_DOUBLE_EQ(a.softmax_scale, b.softmax_scale);
}

TEST(Presets, MatchTheReleasedConfigs) {
  expect_same_model(preset_config("deepseek-v2-lite"), parse_deepseek_config(test_util::kV2LiteConfigJson));
  expect_same_model(preset_config("deepseek-v3"), parse_deepseek_config(test_util::kV3ConfigJson));
  expect_same_model(preset_config("deepseek-r1"), preset_config("deepseek-v3"));
}

TEST(Presets, DeepSeekV2) {
  DeepSeekConfig c = preset_config("deepseek-v2");
  EXPECT_EQ(c.family, ModelFamily::kDeepSeekV2);
  EXPECT_EQ(c.hidden_size, 5120);
  EXPECT_EQ(c.num_hidden_layers, 60);
  EXPECT_EQ(c.num_moe_layers(), 59);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.n_routed_experts, 160);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 3);
  EXPECT_EQ(c.topk_method, TopkMethod::kGroupLimitedGreedy);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 16.0);
  EXPECT_NEAR(c.softmax_scale, 0.1352338, 5e-8);  // mscale_all_dim 1.0 in this file (§11.12)
}

TEST(Presets, NamesAndUnknownName) {
  EXPECT_EQ(preset_names(),
            (std::vector<std::string_view>{"deepseek-v2-lite", "deepseek-v2", "deepseek-v3", "deepseek-r1"}));
  for (std::string_view name : preset_names()) EXPECT_NO_THROW(preset_config(name)) << name;
  std::string message = test_util::error_message([] { preset_config("deepseek-v4"); });
  EXPECT_NE(message.find("unknown preset 'deepseek-v4' (valid presets: deepseek-v2-lite, deepseek-v2, "
                         "deepseek-v3, deepseek-r1)"),
            std::string::npos)
      << message;
}

}  // namespace
}  // namespace mlaserve
