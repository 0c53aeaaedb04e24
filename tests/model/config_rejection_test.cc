// Every way a config.json is refused: each case edits a released config and must give an
// mlaserve::Error (never an nlohmann exception) naming the file and the offending field.
#include <gtest/gtest.h>

#include <functional>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/config.h"
#include "released_configs.h"
#include "temp_dir.h"

namespace mlaserve {
namespace {

using nlohmann::json;

struct RejectionCase {
  const char* name;
  std::string_view base;
  std::function<void(json&)> edit;
  const char* expected;  // must appear in the message
};

std::ostream& operator<<(std::ostream& os, const RejectionCase& c) { return os << c.name; }

void set(json& j, const char* key, json value) { j[key] = std::move(value); }

const RejectionCase kCases[] = {
    {"ModelTypeUnsupported", test_util::kV3ConfigJson, [](json& j) { set(j, "model_type", "llama"); },
     "field 'model_type' 'llama' is not supported"},
    {"ModelTypeMissing", test_util::kV3ConfigJson, [](json& j) { j.erase("model_type"); },
     "field 'model_type' is required"},
    {"HiddenSizeZero", test_util::kV3ConfigJson, [](json& j) { set(j, "hidden_size", 0); },
     "hidden_size must be positive"},
    {"HeadsNegative", test_util::kV3ConfigJson, [](json& j) { set(j, "num_attention_heads", -1); },
     "num_attention_heads must be positive"},
    {"VocabSizeString", test_util::kV3ConfigJson, [](json& j) { set(j, "vocab_size", "129280"); },
     "field 'vocab_size' must be an integer, got string \"129280\""},
    {"HiddenSizeBool", test_util::kV3ConfigJson, [](json& j) { set(j, "hidden_size", true); },
     "field 'hidden_size' must be an integer, got boolean true"},
    {"HiddenSizeFraction", test_util::kV3ConfigJson, [](json& j) { set(j, "hidden_size", 7168.5); },
     "field 'hidden_size' must be an integer"},
    {"HiddenSizeHugeFloat", test_util::kV3ConfigJson, [](json& j) { set(j, "hidden_size", 1e30); },
     "field 'hidden_size' must be an integer"},
    {"HiddenSizeBeyondInt64", test_util::kV3ConfigJson,
     [](json& j) { set(j, "hidden_size", 18446744073709551615ull); },
     "field 'hidden_size' must be an integer"},
    {"HiddenSizeBeyondInt32", test_util::kV3ConfigJson, [](json& j) { set(j, "hidden_size", 1ll << 40); },
     "hidden_size = 1099511627776 is larger than the supported"},
    {"LayersAbsurd", test_util::kV3ConfigJson, [](json& j) { set(j, "num_hidden_layers", 1000000000); },
     "num_hidden_layers = 1000000000 is larger than the supported"},
    {"MaxPositionsZero", test_util::kV3ConfigJson, [](json& j) { set(j, "max_position_embeddings", 0); },
     "max_position_embeddings must be positive"},
    {"QLoraRankZero", test_util::kV3ConfigJson, [](json& j) { set(j, "q_lora_rank", 0); }, "q_lora_rank"},
    {"KvLoraRankOdd", test_util::kV3ConfigJson, [](json& j) { set(j, "kv_lora_rank", 511); },
     "kv_lora_rank must be even"},
    {"RopeDimOdd", test_util::kV3ConfigJson, [](json& j) { set(j, "qk_rope_head_dim", 63); },
     "qk_rope_head_dim must be even"},
    {"RmsNormEpsZero", test_util::kV3ConfigJson, [](json& j) { set(j, "rms_norm_eps", 0); },
     "rms_norm_eps must be positive"},
    {"ExpertsNotDivisibleByGroups", test_util::kV3ConfigJson, [](json& j) { set(j, "n_group", 3); },
     "n_routed_experts (256) is not divisible by n_group (3)"},
    {"TopkGroupAboveGroups", test_util::kV3ConfigJson, [](json& j) { set(j, "topk_group", 9); },
     "topk_group = 9 is outside [1, 8]"},
    {"TopkAboveExperts", test_util::kV3ConfigJson, [](json& j) { set(j, "num_experts_per_tok", 300); },
     "num_experts_per_tok = 300 is outside [1, 256]"},
    {"TopkAboveEligibleGroups", test_util::kV3ConfigJson, [](json& j) { set(j, "num_experts_per_tok", 129); },
     "num_experts_per_tok (129) exceeds the 128 experts of topk_group (4) groups of 32"},
    {"TopkNullWithExperts", test_util::kV3ConfigJson, [](json& j) { set(j, "num_experts_per_tok", nullptr); },
     "field 'num_experts_per_tok' is null, but n_routed_experts is 256"},
    {"TopkMissingInV2", test_util::kV2LiteConfigJson, [](json& j) { j.erase("num_experts_per_tok"); },
     "field 'num_experts_per_tok' is required: DeepSeek-V2 has no usable default"},
    {"NoauxWithSoftmax", test_util::kV3ConfigJson, [](json& j) { set(j, "scoring_func", "softmax"); },
     "noaux_tc needs scoring_func sigmoid"},
    {"NoauxOneExpertPerGroup", test_util::kV3ConfigJson,
     [](json& j) {
       set(j, "n_group", 256);
       set(j, "topk_group", 8);
     },
     "noaux_tc needs at least 2 experts per group"},
    {"ScoringUnknown", test_util::kV3ConfigJson, [](json& j) { set(j, "scoring_func", "tanh"); },
     "field 'scoring_func' 'tanh' is not supported"},
    {"TopkMethodUnknownWithGroups", test_util::kV3ConfigJson,
     [](json& j) { set(j, "topk_method", "gready"); }, "field 'topk_method' 'gready' is not a known method"},
    {"TopkMethodNumber", test_util::kV3ConfigJson, [](json& j) { set(j, "topk_method", 3); },
     "field 'topk_method' must be a string"},
    {"RoutedScalingZero", test_util::kV3ConfigJson, [](json& j) { set(j, "routed_scaling_factor", 0); },
     "routed_scaling_factor must be positive"},
    {"SharedExpertsNegative", test_util::kV3ConfigJson, [](json& j) { set(j, "n_shared_experts", -1); },
     "n_shared_experts = -1 is outside"},
    {"MoeLayerFreqZero", test_util::kV3ConfigJson, [](json& j) { set(j, "moe_layer_freq", 0); },
     "moe_layer_freq must be positive"},
    {"FirstDenseNegative", test_util::kV3ConfigJson, [](json& j) { set(j, "first_k_dense_replace", -1); },
     "first_k_dense_replace = -1 is outside"},
    {"DenseLayersWithoutWidth", test_util::kV3ConfigJson, [](json& j) { set(j, "intermediate_size", 0); },
     "intermediate_size (some layers are dense) must be positive"},
    {"AttentionBias", test_util::kV3ConfigJson, [](json& j) { set(j, "attention_bias", true); },
     "field 'attention_bias' true is not supported"},
    {"MlpBias", test_util::kV3ConfigJson, [](json& j) { set(j, "mlp_bias", true); },
     "field 'mlp_bias' true is not supported"},
    {"TiedEmbeddings", test_util::kV3ConfigJson, [](json& j) { set(j, "tie_word_embeddings", true); },
     "field 'tie_word_embeddings' true is not supported: the output head is read from lm_head.weight"},
    {"AttentionBiasString", test_util::kV3ConfigJson, [](json& j) { set(j, "attention_bias", "false"); },
     "field 'attention_bias' must be true or false"},
    {"RopeNotInterleaved", test_util::kV3ConfigJson, [](json& j) { set(j, "rope_interleave", false); },
     "field 'rope_interleave' false is not supported"},
    {"HiddenActGelu", test_util::kV3ConfigJson, [](json& j) { set(j, "hidden_act", "gelu"); },
     "field 'hidden_act' 'gelu' is not supported"},
    {"RopeScalingNotObject", test_util::kV3ConfigJson, [](json& j) { set(j, "rope_scaling", "yarn"); },
     "field 'rope_scaling' must be an object"},
    {"RopeTypeLinear", test_util::kV3ConfigJson, [](json& j) { j["rope_scaling"]["type"] = "linear"; },
     "field 'rope_scaling.type' 'linear' is not supported"},
    {"RopeTypesDisagree", test_util::kV3ConfigJson,
     [](json& j) { j["rope_scaling"]["rope_type"] = "default"; },
     "field 'rope_scaling.rope_type' 'default' disagrees with rope_scaling.type 'yarn'"},
    {"RopeTypeMissing", test_util::kV3ConfigJson, [](json& j) { j["rope_scaling"].erase("type"); },
     "field 'rope_scaling.rope_type' is required"},
    {"RopeFactorMissing", test_util::kV3ConfigJson, [](json& j) { j["rope_scaling"].erase("factor"); },
     "field 'rope_scaling.factor' is required for yarn"},
    {"RopeFactorString", test_util::kV3ConfigJson, [](json& j) { j["rope_scaling"]["factor"] = "40"; },
     "field 'rope_scaling.factor' must be a number, got string \"40\""},
    {"RopeFactorBelowOne", test_util::kV3ConfigJson, [](json& j) { j["rope_scaling"]["factor"] = 0.5; },
     "rope factor must be >= 1"},
    {"RopeBetasSwapped", test_util::kV3ConfigJson, [](json& j) { j["rope_scaling"]["beta_slow"] = 64; },
     "beta_fast (32) and beta_slow (64)"},
    {"RopeMscaleNegative", test_util::kV3ConfigJson,
     [](json& j) { j["rope_scaling"]["mscale_all_dim"] = -1; }, "mscale_all_dim must be >= 0"},
    {"RopeThetaNegative", test_util::kV3ConfigJson, [](json& j) { set(j, "rope_theta", -1); },
     "rope_theta must be positive"},
    {"RopeThetaDisagrees", test_util::kV3ConfigJson,
     [](json& j) {
       j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 50000}};
     },
     "field 'rope_parameters.rope_theta' (50000) disagrees with rope_theta (10000)"},
    {"EosEmptyList", test_util::kV3ConfigJson, [](json& j) { set(j, "eos_token_id", json::array()); },
     "field 'eos_token_id' must be an integer or a non-empty list"},
    {"EosString", test_util::kV3ConfigJson, [](json& j) { set(j, "eos_token_id", "1"); },
     "field 'eos_token_id' must be an integer or a non-empty list"},
    {"EosListOfStrings", test_util::kV3ConfigJson, [](json& j) { set(j, "eos_token_id", {"1"}); },
     "field 'eos_token_id' must list integers"},
    {"EosOutsideVocab", test_util::kV3ConfigJson, [](json& j) { set(j, "eos_token_id", 129280); },
     "eos_token_id = 129280 is outside [0, 129279]"},
    {"BosNegative", test_util::kV3ConfigJson, [](json& j) { set(j, "bos_token_id", -1); },
     "bos_token_id = -1 is outside"},
    {"QuantizationNotObject", test_util::kV3ConfigJson, [](json& j) { set(j, "quantization_config", "fp8"); },
     "field 'quantization_config' must be an object"},
    {"QuantMethodAwq", test_util::kV3ConfigJson,
     [](json& j) { j["quantization_config"]["quant_method"] = "awq"; },
     "field 'quantization_config.quant_method' 'awq' is not supported"},
    {"QuantMethodMissing", test_util::kV3ConfigJson,
     [](json& j) { j["quantization_config"].erase("quant_method"); },
     "field 'quantization_config.quant_method' is required"},
    {"QuantFmtE5m2", test_util::kV3ConfigJson, [](json& j) { j["quantization_config"]["fmt"] = "e5m2"; },
     "field 'quantization_config.fmt' 'e5m2' is not supported"},
    {"QuantBlock64", test_util::kV3ConfigJson,
     [](json& j) {
       j["quantization_config"]["weight_block_size"] = {64, 64};
     },
     "quantization_config.weight_block_size must be [128, 128], got [64, 64]"},
    {"QuantBlockOneNumber", test_util::kV3ConfigJson,
     [](json& j) { j["quantization_config"]["weight_block_size"] = {128}; },
     "field 'quantization_config.weight_block_size' must be a list of two integers"},
    {"QuantStaticActivations", test_util::kV3ConfigJson,
     [](json& j) { j["quantization_config"]["activation_scheme"] = "static"; },
     "field 'quantization_config.activation_scheme' 'static' is not supported"},
    {"QuantScaleFmtUnknown", test_util::kV3ConfigJson,
     [](json& j) { j["quantization_config"]["scale_fmt"] = "e8m0"; },
     "field 'quantization_config.scale_fmt' 'e8m0' is not supported"},
};

class ConfigRejection : public ::testing::TestWithParam<RejectionCase> {};

TEST_P(ConfigRejection, NamesFileAndField) {
  const RejectionCase& c = GetParam();
  json j = json::parse(c.base);
  c.edit(j);
  std::string text = j.dump();
  std::string message = test_util::error_message([&] { parse_deepseek_config(text, "bad/config.json"); });
  EXPECT_EQ(message.rfind("bad/config.json: ", 0), 0u) << message;
  EXPECT_NE(message.find(c.expected), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(Config, ConfigRejection, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<RejectionCase>& info) { return info.param.name; });

// Text that is not a config object at all.
TEST(ConfigRejectionText, NotAnObjectInvalidOrDuplicated) {
  struct TextCase {
    const char* text;
    const char* expected;
  };
  const TextCase cases[] = {
      {"[1, 2]", "bad.json: expected a JSON object, got array"},
      {"{\"model_type\": \"deepseek_v3\",", "bad.json: invalid JSON"},
      {"", "bad.json: invalid JSON"},
      {"{\"model_type\": \"deepseek_v3\", \"hidden_size\": 7168, \"hidden_size\": 1}",
       "bad.json: duplicate key 'hidden_size'"},
      {"{\"model_type\": \"deepseek_v3\", \"x\": \"\xff\"}", "bad.json: invalid JSON"},
  };
  for (const TextCase& c : cases) {
    std::string message = test_util::error_message([&] { parse_deepseek_config(c.text, "bad.json"); });
    EXPECT_NE(message.find(c.expected), std::string::npos) << c.text << " -> " << message;
  }
}

}  // namespace
}  // namespace mlaserve
