// The config.json parser on the released configs (MODEL_SPEC §10 item 1), both rope layouts,
// number spellings and per-family defaults. Rejections are in config_rejection_test.cc.
#include "model/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/presets.h"
#include "released_configs.h"
#include "temp_dir.h"

namespace mlaserve {
namespace {

using test_util::kV2LiteConfigJson;
using test_util::kV3ConfigJson;

DeepSeekConfig parse(std::string_view text) { return parse_deepseek_config(text, "test.json"); }

// `base` with `edit` applied, as JSON text.
std::string edited(std::string_view base, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(base);
  edit(j);
  return j.dump();
}

TEST(Config, DeepSeekV2LiteAsReleased) {
  DeepSeekConfig c = parse(kV2LiteConfigJson);
  EXPECT_EQ(c.family, ModelFamily::kDeepSeekV2);
  EXPECT_FALSE(c.q_lora_rank.has_value());
  EXPECT_EQ(c.vocab_size, 102400);
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.intermediate_size, 10944);
  EXPECT_EQ(c.moe_intermediate_size, 1408);
  EXPECT_EQ(c.num_hidden_layers, 27);
  EXPECT_EQ(c.num_attention_heads, 16);
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.qk_head_dim, 192);
  EXPECT_EQ(c.kv_cache_dim, 576);
  EXPECT_EQ(c.v_head_dim, 128);
  EXPECT_EQ(c.n_routed_experts, 64);
  EXPECT_EQ(c.shared_intermediate_size(), 2816);
  EXPECT_EQ(c.num_experts_per_tok, 6);
  EXPECT_EQ(c.topk_method, TopkMethod::kGreedy);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSoftmax);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 1.0);
  EXPECT_EQ(c.bos_token_id, 100000);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{100001});
  EXPECT_FALSE(c.fp8.has_value());
  EXPECT_EQ(c.num_nextn_predict_layers, 0);

  std::vector<bool> mask(27, true);
  mask[0] = false;  // [F, T x 26]
  EXPECT_EQ(c.layer_is_moe, mask);
  EXPECT_EQ(c.num_moe_layers(), 26);

  EXPECT_TRUE(c.rope.yarn);
  EXPECT_DOUBLE_EQ(c.rope.factor, 40.0);
  EXPECT_DOUBLE_EQ(c.rope.theta, 10000.0);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.rope.mscale, 0.707);
  EXPECT_DOUBLE_EQ(c.rope.mscale_all_dim, 0.707);
  EXPECT_NEAR(c.softmax_scale, 0.1147214, 5e-8);
  EXPECT_DOUBLE_EQ(c.rope_magnitude, 1.0);
}

TEST(Config, DeepSeekV3AsReleased) {
  DeepSeekConfig c = parse(kV3ConfigJson);
  EXPECT_EQ(c.family, ModelFamily::kDeepSeekV3);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.vocab_size, 129280);
  EXPECT_EQ(c.hidden_size, 7168);
  EXPECT_EQ(c.num_hidden_layers, 61);
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
  EXPECT_EQ(c.num_attention_heads, 128);
  EXPECT_EQ(c.n_routed_experts, 256);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 4);
  EXPECT_EQ(c.topk_method, TopkMethod::kNoAuxTc);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSigmoid);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.first_k_dense_replace, 3);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{1});
  EXPECT_EQ(c.num_moe_layers(), 58);
  for (int64_t i = 0; i < 61; ++i) EXPECT_EQ(c.is_moe_layer(i), i >= 3) << "layer " << i;
  EXPECT_NEAR(c.softmax_scale, 0.1352338, 5e-8);
  EXPECT_DOUBLE_EQ(c.rope_magnitude, 1.0);
  EXPECT_EQ(c.kv_cache_dim * 2 * c.num_hidden_layers, 70272);  // KV bytes per token, bf16 (§4.1)
  ASSERT_TRUE(c.fp8.has_value());
  EXPECT_EQ(c.fp8->block_n, 128);
  EXPECT_EQ(c.fp8->block_k, 128);
  EXPECT_EQ(c.fp8->scale_format, ScaleFormat::kFloat32);
}

// transformers 5 re-saves rope_scaling as rope_parameters, with rope_theta inside and the kind
// as rope_type; the parse must not change.
TEST(Config, RopeParametersLayoutMatchesRopeScaling) {
  DeepSeekConfig reference = parse(kV3ConfigJson);
  std::string moved = edited(kV3ConfigJson, [](nlohmann::json& j) {
    nlohmann::json rope = j["rope_scaling"];
    rope.erase("type");
    rope["rope_type"] = "yarn";
    rope["rope_theta"] = 10000.0;
    j.erase("rope_scaling");
    j.erase("rope_theta");
    j["rope_parameters"] = rope;
  });
  DeepSeekConfig c = parse(moved);
  EXPECT_TRUE(c.rope.yarn);
  EXPECT_DOUBLE_EQ(c.rope.theta, 10000.0);
  EXPECT_DOUBLE_EQ(c.rope.factor, 40.0);
  EXPECT_DOUBLE_EQ(c.softmax_scale, reference.softmax_scale);

  // rope_theta top-level beside rope_parameters, and both kind keys agreeing, also parse.
  std::string top_level = edited(moved, [](nlohmann::json& j) {
    j["rope_parameters"].erase("rope_theta");
    j["rope_parameters"]["type"] = "yarn";
    j["rope_theta"] = 5000;
  });
  EXPECT_DOUBLE_EQ(parse(top_level).rope.theta, 5000.0);

  // rope_parameters wins over a stale rope_scaling block.
  std::string both = edited(moved, [](nlohmann::json& j) { j["rope_scaling"] = {{"type", "linear"}}; });
  EXPECT_DOUBLE_EQ(parse(both).rope.factor, 40.0);
}

TEST(Config, RopeTypeKeyAndPlainRope) {
  std::string rope_type = edited(kV2LiteConfigJson, [](nlohmann::json& j) {
    j["rope_scaling"].erase("type");
    j["rope_scaling"]["rope_type"] = "yarn";
  });
  EXPECT_NEAR(parse(rope_type).softmax_scale, 0.1147214, 5e-8);

  // No scaling block, a "default" block, or rope_parameters holding only rope_theta: plain
  // RoPE, no mscale.
  std::string none = edited(kV2LiteConfigJson, [](nlohmann::json& j) { j.erase("rope_scaling"); });
  std::string plain = edited(kV2LiteConfigJson, [](nlohmann::json& j) {
    j["rope_scaling"] = {{"type", "default"}};
  });
  std::string theta_only = edited(kV2LiteConfigJson, [](nlohmann::json& j) {
    j.erase("rope_scaling");
    j.erase("rope_theta");
    j["rope_parameters"] = {{"rope_theta", 20000}};
  });
  for (const std::string& text : {none, plain, theta_only}) {
    DeepSeekConfig c = parse(text);
    EXPECT_FALSE(c.rope.yarn);
    EXPECT_DOUBLE_EQ(c.softmax_scale, 1.0 / std::sqrt(192.0));
    EXPECT_DOUBLE_EQ(c.rope_magnitude, 1.0);
  }
  EXPECT_DOUBLE_EQ(parse(theta_only).rope.theta, 20000.0);
}

TEST(Config, IntegerAndFloatSpellings) {
  std::string floats = edited(kV3ConfigJson, [](nlohmann::json& j) {
    j["rope_scaling"]["factor"] = 40.0;
    j["rope_scaling"]["beta_fast"] = 32.0;
    j["hidden_size"] = 7168.0;  // an integral float for an integer field
    j["routed_scaling_factor"] = 2.5;
    j["rope_theta"] = 10000.0;
  });
  DeepSeekConfig a = parse(kV3ConfigJson);
  DeepSeekConfig b = parse(floats);
  EXPECT_EQ(b.hidden_size, 7168);
  EXPECT_DOUBLE_EQ(a.rope.factor, b.rope.factor);
  EXPECT_DOUBLE_EQ(a.rope.beta_fast, b.rope.beta_fast);
  EXPECT_DOUBLE_EQ(a.softmax_scale, b.softmax_scale);
}

TEST(Config, HeadDimAndKvHeadsArtefactsAreIgnored) {
  std::string text = edited(kV3ConfigJson, [](nlohmann::json& j) {
    j["head_dim"] = 64;
    j["num_key_value_heads"] = 1;
  });
  DeepSeekConfig c = parse(text);
  EXPECT_EQ(c.qk_head_dim, 192);
  EXPECT_EQ(c.num_attention_heads, 128);
  EXPECT_NEAR(c.softmax_scale, 0.1352338, 5e-8);
}

TEST(Config, EosListAndTopkSpellings) {
  std::string eos = edited(kV3ConfigJson, [](nlohmann::json& j) { j["eos_token_id"] = {1, 128803}; });
  EXPECT_EQ(parse(eos).eos_token_ids, (std::vector<int64_t>{1, 128803}));

  // HF-remote's misspelt default, and an unknown value, without groups: greedy.
  for (const char* method : {"gready", "some_future_method"}) {
    std::string text = edited(kV2LiteConfigJson, [&](nlohmann::json& j) { j["topk_method"] = method; });
    EXPECT_EQ(parse(text).topk_method, TopkMethod::kGreedy) << method;
  }
}

TEST(Config, NullsThatMeanSomething) {
  std::string text = edited(kV2LiteConfigJson, [](nlohmann::json& j) {
    j["n_routed_experts"] = nullptr;  // dense model
    j["n_shared_experts"] = nullptr;
    j["num_experts_per_tok"] = nullptr;
    j["n_group"] = nullptr;
    j["topk_group"] = nullptr;
  });
  DeepSeekConfig c = parse(text);
  EXPECT_EQ(c.n_routed_experts, 0);
  EXPECT_EQ(c.n_shared_experts, 0);
  EXPECT_EQ(c.num_moe_layers(), 0);
  EXPECT_EQ(c.n_group, 1);
  EXPECT_EQ(c.topk_group, 1);
}

TEST(Config, MoeLayerFrequency) {
  std::string text = edited(kV2LiteConfigJson, [](nlohmann::json& j) { j["moe_layer_freq"] = 2; });
  DeepSeekConfig c = parse(text);
  for (int64_t i = 0; i < 27; ++i) EXPECT_EQ(c.is_moe_layer(i), i >= 1 && i % 2 == 0) << "layer " << i;
}

TEST(Config, Fp8ScaleFormatUe8m0) {
  std::string text =
      edited(kV3ConfigJson, [](nlohmann::json& j) { j["quantization_config"]["scale_fmt"] = "ue8m0"; });
  DeepSeekConfig c = parse(text);
  ASSERT_TRUE(c.fp8.has_value());
  EXPECT_EQ(c.fp8->scale_format, ScaleFormat::kUE8M0);
}

// An almost empty V3 config reproduces V3's shapes from HF-V3's defaults, and says so.
TEST(Config, V3DefaultsWithWarning) {
  ::testing::internal::CaptureStderr();
  DeepSeekConfig c = parse(R"({"model_type": "deepseek_v3"})");
  std::string log = ::testing::internal::GetCapturedStderr();
  DeepSeekConfig v3 = parse(kV3ConfigJson);
  EXPECT_EQ(c.hidden_size, v3.hidden_size);
  EXPECT_EQ(c.vocab_size, v3.vocab_size);
  EXPECT_EQ(c.num_hidden_layers, v3.num_hidden_layers);
  EXPECT_EQ(c.layer_is_moe, v3.layer_is_moe);
  EXPECT_EQ(c.n_routed_experts, 256);
  EXPECT_EQ(c.topk_method, TopkMethod::kNoAuxTc);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSigmoid);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{1});
  EXPECT_FALSE(c.rope.yarn);
  EXPECT_FALSE(c.fp8.has_value());
  EXPECT_NE(log.find("warn"), std::string::npos) << log;
  EXPECT_NE(log.find("test.json"), std::string::npos) << log;
  EXPECT_NE(log.find("hidden_size=7168"), std::string::npos) << log;
  EXPECT_NE(log.find("scoring_func=sigmoid"), std::string::npos) << log;

  ::testing::internal::CaptureStderr();
  parse(kV3ConfigJson);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");  // a complete config: no warning
}

TEST(Config, V2DefaultsAndRequiredSizes) {
  const char* minimal = R"({"model_type": "deepseek_v2", "vocab_size": 102400, "hidden_size": 2048,
    "intermediate_size": 10944, "num_hidden_layers": 4, "num_attention_heads": 16,
    "num_experts_per_tok": 6})";
  ::testing::internal::CaptureStderr();
  DeepSeekConfig c = parse(minimal);
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.n_routed_experts, 64);
  EXPECT_EQ(c.n_shared_experts, 2);
  EXPECT_EQ(c.moe_intermediate_size, 1407);
  EXPECT_EQ(c.topk_method, TopkMethod::kGreedy);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSoftmax);
  EXPECT_EQ(c.first_k_dense_replace, 0);
  EXPECT_EQ(c.num_moe_layers(), 4);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{100001});
  EXPECT_NE(log.find("moe_intermediate_size=1407"), std::string::npos) << log;

  std::string missing = test_util::error_message([] { parse(R"({"model_type": "deepseek_v2"})"); });
  EXPECT_NE(missing.find("test.json: field 'vocab_size' is required"), std::string::npos) << missing;
}

// A yarn block without mscale / mscale_all_dim: mscale 1, mscale_all_dim 0 (§1.3), so no
// softmax correction and a cos/sin magnitude of 0.1 ln(factor) + 1.
TEST(Config, YarnMscaleDefaults) {
  std::string text = edited(kV3ConfigJson, [](nlohmann::json& j) {
    j["rope_scaling"].erase("mscale");
    j["rope_scaling"].erase("mscale_all_dim");
  });
  DeepSeekConfig c = parse(text);
  EXPECT_DOUBLE_EQ(c.softmax_scale, 1.0 / std::sqrt(192.0));
  EXPECT_DOUBLE_EQ(c.rope_magnitude, 0.1 * std::log(40.0) + 1.0);
}

TEST(Config, YarnMscale) {
  EXPECT_NEAR(yarn_mscale(40.0, 1.0), 1.368888, 5e-7);
  EXPECT_NEAR(yarn_mscale(40.0, 0.707), 1.260804, 5e-7);
  EXPECT_DOUBLE_EQ(yarn_mscale(1.0, 1.0), 1.0);
  EXPECT_DOUBLE_EQ(yarn_mscale(0.5, 1.0), 1.0);
}

TEST(Config, FinalizeAppliesTheSameRulesToCodeBuiltConfigs) {
  DeepSeekConfig c = preset_config("deepseek-v3");
  c.num_hidden_layers = 4;
  c.first_k_dense_replace = 1;
  finalize_config(c);
  EXPECT_EQ(c.layer_is_moe, (std::vector<bool>{false, true, true, true}));
  c.n_group = 3;
  std::string message = test_util::error_message([&] { finalize_config(c); });
  EXPECT_NE(message.find("n_group"), std::string::npos) << message;
}

TEST(Config, LoadFromFileOrDirectory) {
  test_util::TempDir dir;
  dir.write("config.json", std::string(kV2LiteConfigJson));
  EXPECT_EQ(load_deepseek_config(dir.file("config.json")).hidden_size, 2048);
  EXPECT_EQ(load_deepseek_config(dir.path().string()).hidden_size, 2048);
  std::string missing = dir.file("absent.json");
  std::string message = test_util::error_message([&] { load_deepseek_config(missing); });
  EXPECT_NE(message.find(missing), std::string::npos) << message;
}

}  // namespace
}  // namespace mlaserve
