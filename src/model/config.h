// DeepSeekConfig: the typed model configuration, parsed once from a Hugging Face config.json of
// DeepSeek-V2, V2-Lite, V3, R1 (model_type deepseek_v2 / deepseek_v3). See MODEL_SPEC.md §1.
//
// Everything downstream reads these typed fields; no string or JSON travels further. The
// artefact fields `head_dim` and `num_key_value_heads` are never read: attention shapes come
// from qk_nope_head_dim, qk_rope_head_dim, v_head_dim and kv_lora_rank.
//
// Parsing (config.cc) maps JSON to fields, with the per-family defaults of MODEL_SPEC §1.3 for
// absent ones (one warning lists them all). finalize_config (config_finalize.cc) then validates
// the whole and computes the derived fields; every error names the offending field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mlaserve {

enum class ModelFamily { kDeepSeekV2, kDeepSeekV3 };
enum class TopkMethod { kGreedy, kGroupLimitedGreedy, kNoAuxTc };
enum class ScoringFunc { kSoftmax, kSigmoid };
enum class ScaleFormat { kFloat32, kUE8M0 };  // activation scale rounding for FP8 GEMMs

std::string_view family_name(ModelFamily family);       // "DeepSeek-V2", "DeepSeek-V3"
std::string_view topk_method_name(TopkMethod method);   // the config.json spelling: "noaux_tc"
std::string_view scoring_func_name(ScoringFunc func);   // "softmax", "sigmoid"

struct RopeConfig {
  double theta = 10000.0;
  bool yarn = false;  // rope_scaling / rope_parameters with type "yarn"
  double factor = 1.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
};

struct Fp8Config {
  int64_t block_n = 128;  // weight_block_size[0]: rows (output channels) per scale block
  int64_t block_k = 128;  // weight_block_size[1]: columns (input channels) per scale block
  ScaleFormat scale_format = ScaleFormat::kFloat32;
};

struct DeepSeekConfig {
  ModelFamily family = ModelFamily::kDeepSeekV3;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;              // H
  int64_t intermediate_size = 0;        // I, dense MLP width
  int64_t moe_intermediate_size = 0;    // Im, per-expert width
  int64_t num_hidden_layers = 0;
  int64_t num_nextn_predict_layers = 0;  // MTP modules stored after the main layers (skipped)
  int64_t num_attention_heads = 0;      // n
  std::optional<int64_t> q_lora_rank;   // dq; absent for V2-Lite (single q_proj)
  int64_t kv_lora_rank = 512;           // dc
  int64_t qk_nope_head_dim = 128;       // dn
  int64_t qk_rope_head_dim = 64;        // dr
  int64_t v_head_dim = 128;             // dv
  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 0;
  RopeConfig rope;

  // MoE. n_routed_experts == 0 means a dense model.
  int64_t n_routed_experts = 0;         // E
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;      // k
  int64_t n_group = 1;
  int64_t topk_group = 1;
  TopkMethod topk_method = TopkMethod::kGreedy;
  ScoringFunc scoring_func = ScoringFunc::kSoftmax;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;

  int64_t bos_token_id = 0;
  std::vector<int64_t> eos_token_ids;   // config's eos_token_id (an int or a list)

  std::optional<Fp8Config> fp8;         // quantization_config of an FP8 checkpoint

  // Derived once by finalize_config(), read everywhere else.
  int64_t qk_head_dim = 0;              // dn + dr (192): the softmax scale uses this
  int64_t kv_cache_dim = 0;             // dc + dr (576): values per token per layer in the cache
  double softmax_scale = 0.0;           // qk_head_dim^-1/2 * yarn_mscale(factor, mscale_all_dim)^2
  double rope_magnitude = 1.0;          // cos/sin factor: mscale(f, mscale) / mscale(f, mscale_all_dim)
  std::vector<bool> layer_is_moe;       // [num_hidden_layers]

  bool is_moe_layer(int64_t layer) const { return layer_is_moe.at(static_cast<size_t>(layer)); }
  int64_t shared_intermediate_size() const { return n_shared_experts * moe_intermediate_size; }
  int64_t num_moe_layers() const;
};

// yarn_mscale(s, c) = 1 if s <= 1, else 0.1 * c * ln(s) + 1 (MODEL_SPEC §3.3).
double yarn_mscale(double scale, double mscale_coefficient);

// Parses config.json text. Throws mlaserve::Error naming the field for malformed, inconsistent
// or unsupported values; `source` (a path) is used in messages. Missing fields get the
// documented defaults of the model family, with a warning.
DeepSeekConfig parse_deepseek_config(std::string_view json_text, std::string_view source = "config.json");
DeepSeekConfig load_deepseek_config(const std::string& path);

// Computes the derived fields and validates consistency; parse_deepseek_config calls it.
// Exposed so that presets and tests that build configs in code use the same rules.
void finalize_config(DeepSeekConfig& config);

}  // namespace mlaserve
