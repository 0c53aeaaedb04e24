// finalize_config: the value checks and derived fields of a DeepSeekConfig, for configs parsed
// from JSON and configs built in code alike.
//
// Derived (MODEL_SPEC §3.3, §3.5, §5.4):
//   qk_head_dim    = dn + dr                       (192; the softmax scale uses it, never 576)
//   kv_cache_dim   = dc + dr                       (576 cached values per token and layer)
//   softmax_scale  = qk_head_dim^-1/2 * m^2,  m = yarn_mscale(factor, mscale_all_dim),
//                    the m^2 only with YaRN and mscale_all_dim != 0
//   rope_magnitude = yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim) with
//                    YaRN, else 1
//   layer i is MoE iff n_routed_experts > 0, i >= first_k_dense_replace, i % moe_layer_freq == 0
//
// Sizes are bounded by int32 (kernels index with int32) and the layer count by kMaxLayers, so
// that an absurd config fails here with its field named instead of failing an allocation.
#include <cmath>
#include <cstdint>
#include <limits>

#include <fmt/format.h>

#include "core/error.h"
#include "model/config.h"

namespace mlaserve {
namespace {

constexpr int64_t kMaxSize = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxLayers = 4096;

void check_size(std::string_view field, int64_t value, int64_t max = kMaxSize) {
  if (value <= 0) MLA_FAIL("invalid config: {} must be positive, got {}", field, value);
  if (value > max) MLA_FAIL("invalid config: {} = {} is larger than the supported {}", field, value, max);
}

void check_range(std::string_view field, int64_t value, int64_t low, int64_t high) {
  if (value < low || value > high) {
    MLA_FAIL("invalid config: {} = {} is outside [{}, {}]", field, value, low, high);
  }
}

void check_even(std::string_view field, int64_t value) {
  if (value % 2 != 0) MLA_FAIL("invalid config: {} must be even, got {}", field, value);
}

void check_rope(const RopeConfig& rope) {
  if (!(rope.theta > 0)) MLA_FAIL("invalid config: rope_theta must be positive, got {}", rope.theta);
  if (!rope.yarn) return;
  if (!(rope.factor >= 1)) MLA_FAIL("invalid config: rope factor must be >= 1 for yarn, got {}", rope.factor);
  check_size("rope original_max_position_embeddings", rope.original_max_position_embeddings);
  if (!(rope.beta_slow > 0) || !(rope.beta_fast >= rope.beta_slow)) {
    MLA_FAIL("invalid config: rope beta_fast ({}) and beta_slow ({}) must satisfy beta_fast >= beta_slow > 0",
             rope.beta_fast, rope.beta_slow);
  }
  if (!(rope.mscale >= 0)) MLA_FAIL("invalid config: rope mscale must be >= 0, got {}", rope.mscale);
  if (!(rope.mscale_all_dim >= 0)) {
    MLA_FAIL("invalid config: rope mscale_all_dim must be >= 0, got {}", rope.mscale_all_dim);
  }
}

void check_moe(const DeepSeekConfig& c) {
  check_range("n_routed_experts", c.n_routed_experts, 0, kMaxSize);
  check_range("first_k_dense_replace", c.first_k_dense_replace, 0, kMaxLayers);
  check_size("moe_layer_freq", c.moe_layer_freq, kMaxLayers);
  if (c.n_routed_experts == 0) return;
  const int64_t experts = c.n_routed_experts;
  check_size("moe_intermediate_size", c.moe_intermediate_size);
  check_range("n_shared_experts", c.n_shared_experts, 0, kMaxSize / c.moe_intermediate_size);
  check_range("num_experts_per_tok", c.num_experts_per_tok, 1, experts);
  check_size("n_group", c.n_group);
  if (experts % c.n_group != 0) {
    MLA_FAIL("invalid config: n_routed_experts ({}) is not divisible by n_group ({})", experts, c.n_group);
  }
  check_range("topk_group", c.topk_group, 1, c.n_group);
  const int64_t per_group = experts / c.n_group;
  if (c.topk_method != TopkMethod::kGreedy && c.num_experts_per_tok > c.topk_group * per_group) {
    MLA_FAIL(
        "invalid config: num_experts_per_tok ({}) exceeds the {} experts of topk_group ({}) groups of {}",
        c.num_experts_per_tok, c.topk_group * per_group, c.topk_group, per_group);
  }
  if (c.topk_method == TopkMethod::kNoAuxTc) {
    if (c.scoring_func != ScoringFunc::kSigmoid) {
      MLA_FAIL("invalid config: topk_method noaux_tc needs scoring_func sigmoid, got {}",
               scoring_func_name(c.scoring_func));
    }
    // The group score is the sum of the two best experts of the group (MODEL_SPEC §5.2).
    if (per_group < 2) {
      MLA_FAIL(
          "invalid config: topk_method noaux_tc needs at least 2 experts per group, got {} ({} / n_group {})",
          per_group, experts, c.n_group);
    }
  }
  if (!(c.routed_scaling_factor > 0) || !std::isfinite(c.routed_scaling_factor)) {
    MLA_FAIL("invalid config: routed_scaling_factor must be positive, got {}", c.routed_scaling_factor);
  }
}

void check_tokens(const DeepSeekConfig& c) {
  check_range("bos_token_id", c.bos_token_id, 0, c.vocab_size - 1);
  if (c.eos_token_ids.empty()) MLA_FAIL("invalid config: eos_token_id is empty");
  for (int64_t id : c.eos_token_ids) check_range("eos_token_id", id, 0, c.vocab_size - 1);
}

}  // namespace

double yarn_mscale(double scale, double mscale_coefficient) {
  if (scale <= 1) return 1.0;
  return 0.1 * mscale_coefficient * std::log(scale) + 1.0;
}

int64_t DeepSeekConfig::num_moe_layers() const {
  int64_t n = 0;
  for (bool moe : layer_is_moe) n += moe ? 1 : 0;
  return n;
}

void finalize_config(DeepSeekConfig& c) {
  check_size("vocab_size", c.vocab_size);
  check_size("hidden_size", c.hidden_size);
  check_size("num_hidden_layers", c.num_hidden_layers, kMaxLayers);
  check_range("num_nextn_predict_layers", c.num_nextn_predict_layers, 0, kMaxLayers);
  check_size("num_attention_heads", c.num_attention_heads);
  if (c.q_lora_rank) check_size("q_lora_rank (null for no query compression)", *c.q_lora_rank);
  check_size("kv_lora_rank", c.kv_lora_rank);
  check_even("kv_lora_rank", c.kv_lora_rank);
  check_size("qk_nope_head_dim", c.qk_nope_head_dim);
  check_size("qk_rope_head_dim", c.qk_rope_head_dim);
  check_even("qk_rope_head_dim", c.qk_rope_head_dim);  // RoPE rotates channel pairs
  check_size("v_head_dim", c.v_head_dim);
  check_size("max_position_embeddings", c.max_position_embeddings);
  if (!(c.rms_norm_eps > 0) || !std::isfinite(c.rms_norm_eps)) {
    MLA_FAIL("invalid config: rms_norm_eps must be positive, got {}", c.rms_norm_eps);
  }
  check_rope(c.rope);
  check_moe(c);
  check_tokens(c);
  if (c.fp8 && (c.fp8->block_n != 128 || c.fp8->block_k != 128)) {
    MLA_FAIL("invalid config: quantization_config.weight_block_size must be [128, 128], got [{}, {}]",
             c.fp8->block_n, c.fp8->block_k);
  }

  c.layer_is_moe.assign(static_cast<size_t>(c.num_hidden_layers), false);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    c.layer_is_moe[static_cast<size_t>(i)] =
        c.n_routed_experts > 0 && i >= c.first_k_dense_replace && i % c.moe_layer_freq == 0;
  }
  if (c.num_moe_layers() < c.num_hidden_layers)
    check_size("intermediate_size (some layers are dense)", c.intermediate_size);

  c.qk_head_dim = c.qk_nope_head_dim + c.qk_rope_head_dim;
  c.kv_cache_dim = c.kv_lora_rank + c.qk_rope_head_dim;
  c.softmax_scale = 1.0 / std::sqrt(static_cast<double>(c.qk_head_dim));
  c.rope_magnitude = 1.0;
  if (c.rope.yarn) {
    if (c.rope.mscale_all_dim != 0) {
      double m = yarn_mscale(c.rope.factor, c.rope.mscale_all_dim);
      c.softmax_scale *= m * m;
    }
    c.rope_magnitude =
        yarn_mscale(c.rope.factor, c.rope.mscale) / yarn_mscale(c.rope.factor, c.rope.mscale_all_dim);
  }
}

}  // namespace mlaserve
