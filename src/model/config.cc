// config.json -> DeepSeekConfig (MODEL_SPEC §1). This file maps JSON to typed fields; the
// value checks and derived fields are finalize_config's (config_finalize.cc).
//
// What the parser accepts, beyond the plain fields:
//   - model_type deepseek_v2 or deepseek_v3; it picks the family and its defaults.
//   - RoPE in either layout: `rope_scaling` (+ top-level `rope_theta`), or transformers 5's
//     `rope_parameters` (rope_theta inside or top-level). The kind is `type` or `rope_type`.
//     rope_parameters wins when both blocks are present.
//   - Integer-valued numbers for float fields (factor: 40) and integral floats for integer
//     fields (2048.0).
//   - An absent field takes its family's default (MODEL_SPEC §1.3), listed in one warning.
//     V2's size fields have no real default (HF-V2's are Llama-like placeholders), so a V2
//     config must state them. A null that means something is honoured: q_lora_rank null = no
//     query compression, n_routed_experts null = dense, n_shared_experts null = none,
//     n_group / topk_group null = no expert groups.
//   - eos_token_id as an int or a list; topk_method "gready" (HF-remote's misspelt default) or
//     any unknown value without expert groups reads as greedy, with a warning.
//   - quantization_config: only DeepSeek's block FP8 (fp8, e4m3, 128x128, dynamic activations,
//     optional scale_fmt ue8m0).
// Never read: head_dim and num_key_value_heads (artefacts, MODEL_SPEC §11.13), and the
// training-only fields. Unknown fields are ignored, as Hugging Face does.
#include "model/config.h"

#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/logging.h"
#include "model/json_fields.h"

namespace mlaserve {

std::string_view family_name(ModelFamily family) {
  switch (family) {
    case ModelFamily::kDeepSeekV2: return "DeepSeek-V2";
    case ModelFamily::kDeepSeekV3: return "DeepSeek-V3";
  }
  return "?";
}

std::string_view topk_method_name(TopkMethod method) {
  switch (method) {
    case TopkMethod::kGreedy: return "greedy";
    case TopkMethod::kGroupLimitedGreedy: return "group_limited_greedy";
    case TopkMethod::kNoAuxTc: return "noaux_tc";
  }
  return "?";
}

std::string_view scoring_func_name(ScoringFunc func) {
  switch (func) {
    case ScoringFunc::kSoftmax: return "softmax";
    case ScoringFunc::kSigmoid: return "sigmoid";
  }
  return "?";
}

namespace {

// What a family uses for a field that config.json leaves out (MODEL_SPEC §1.3: HF-V3's defaults
// reproduce V3; HF-V2's list). std::nullopt: no usable default, the field is required.
struct FamilyDefaults {
  std::optional<int64_t> vocab_size;
  std::optional<int64_t> hidden_size;
  std::optional<int64_t> intermediate_size;
  std::optional<int64_t> num_hidden_layers;
  std::optional<int64_t> num_attention_heads;
  std::optional<int64_t> num_experts_per_tok;
  int64_t moe_intermediate_size;
  int64_t n_routed_experts;
  int64_t n_shared_experts;
  int64_t n_group;
  int64_t topk_group;
  int64_t first_k_dense_replace;
  int64_t max_position_embeddings;
  TopkMethod topk_method;
  ScoringFunc scoring_func;
  bool norm_topk_prob;
  double routed_scaling_factor;
  int64_t bos_token_id;
  int64_t eos_token_id;
};

constexpr FamilyDefaults kV3Defaults{.vocab_size = 129280,
                                     .hidden_size = 7168,
                                     .intermediate_size = 18432,
                                     .num_hidden_layers = 61,
                                     .num_attention_heads = 128,
                                     .num_experts_per_tok = 8,
                                     .moe_intermediate_size = 2048,
                                     .n_routed_experts = 256,
                                     .n_shared_experts = 1,
                                     .n_group = 8,
                                     .topk_group = 4,
                                     .first_k_dense_replace = 3,
                                     .max_position_embeddings = 4096,
                                     .topk_method = TopkMethod::kNoAuxTc,
                                     .scoring_func = ScoringFunc::kSigmoid,
                                     .norm_topk_prob = true,
                                     .routed_scaling_factor = 2.5,
                                     .bos_token_id = 0,
                                     .eos_token_id = 1};

// bos/eos are the V2 tokenizer's (MODEL_SPEC §1.1), as in the configuration class that ships
// with the V2 checkpoints; n_group / topk_group "None" means no groups.
constexpr FamilyDefaults kV2Defaults{.vocab_size = std::nullopt,
                                     .hidden_size = std::nullopt,
                                     .intermediate_size = std::nullopt,
                                     .num_hidden_layers = std::nullopt,
                                     .num_attention_heads = std::nullopt,
                                     .num_experts_per_tok = std::nullopt,
                                     .moe_intermediate_size = 1407,
                                     .n_routed_experts = 64,
                                     .n_shared_experts = 2,
                                     .n_group = 1,
                                     .topk_group = 1,
                                     .first_k_dense_replace = 0,
                                     .max_position_embeddings = 2048,
                                     .topk_method = TopkMethod::kGreedy,
                                     .scoring_func = ScoringFunc::kSoftmax,
                                     .norm_topk_prob = false,
                                     .routed_scaling_factor = 1.0,
                                     .bos_token_id = 100000,
                                     .eos_token_id = 100001};

// Typed reads with defaults. Every defaulted field is appended to `defaulted` (shared by the
// readers of nested blocks) for the one warning.
class FieldReader {
 public:
  FieldReader(const JsonFields& fields, ModelFamily family, std::vector<std::string>& defaulted)
      : fields_(fields), family_(family), defaulted_(defaulted) {}

  // The same family and list, for a nested object.
  FieldReader nested(const JsonFields& fields) const { return FieldReader(fields, family_, defaulted_); }

  int64_t integer(std::string_view key, std::optional<int64_t> fallback) {
    if (auto v = fields_.get_int(key)) return *v;
    if (!fallback) {
      fields_.fail(key, fmt::format("is required: {} has no usable default for it", family_name(family_)));
    }
    note(key, fmt::format("{}", *fallback));
    return *fallback;
  }
  double number(std::string_view key, double fallback) {
    if (auto v = fields_.get_number(key)) return *v;
    note(key, fmt::format("{}", fallback));
    return fallback;
  }
  bool boolean(std::string_view key, bool fallback) {
    if (auto v = fields_.get_bool(key)) return *v;
    note(key, fallback ? "true" : "false");
    return fallback;
  }
  std::string text(std::string_view key, std::string_view fallback) {
    if (auto v = fields_.get_string(key)) return *v;
    note(key, fallback);
    return std::string(fallback);
  }
  void note(std::string_view key, std::string_view value) {
    defaulted_.push_back(fmt::format("{}={}", fields_.path(key), value));
  }

 private:
  const JsonFields& fields_;
  ModelFamily family_;
  std::vector<std::string>& defaulted_;
};

ModelFamily parse_family(const JsonFields& root) {
  std::optional<std::string> type = root.get_string("model_type");
  if (!type) root.fail("model_type", "is required (deepseek_v2 or deepseek_v3)");
  if (*type == "deepseek_v2") return ModelFamily::kDeepSeekV2;
  if (*type == "deepseek_v3") return ModelFamily::kDeepSeekV3;
  root.fail("model_type", fmt::format("'{}' is not supported (expected deepseek_v2 or deepseek_v3)", *type));
}

// Reads an optional boolean that must not be true (or false, for `required`).
void require_bool(const JsonFields& root, std::string_view key, bool required, std::string_view why) {
  std::optional<bool> v = root.get_bool(key);
  if (v && *v != required) root.fail(key, fmt::format("{} is not supported: {}", *v, why));
}

// The kind of a rope block: `type` or `rope_type` (both must agree when both are given). A block
// with neither is plain RoPE only if it holds nothing but rope_theta (transformers 5 writes
// {"rope_theta": ...} that way); otherwise the kind is missing.
std::string rope_kind(const JsonFields& rope) {
  std::optional<std::string> type = rope.get_string("type");
  std::optional<std::string> rope_type = rope.get_string("rope_type");
  if (type && rope_type && *type != *rope_type) {
    rope.fail("rope_type", fmt::format("'{}' disagrees with {} '{}'", *rope_type, rope.path("type"), *type));
  }
  if (rope_type) return *rope_type;
  if (type) return *type;
  for (const auto& [key, value] : rope.value().items()) {
    if (key != "rope_theta") rope.fail("rope_type", "is required (\"yarn\" or \"default\")");
  }
  return "default";
}

RopeConfig parse_rope(const JsonFields& root, FieldReader& reader) {
  RopeConfig rope;
  std::optional<JsonFields> parameters = root.get_object("rope_parameters");
  std::optional<JsonFields> scaling = root.get_object("rope_scaling");
  const std::optional<JsonFields>& block = parameters ? parameters : scaling;

  std::optional<double> theta_top = root.get_number("rope_theta");
  std::optional<double> theta_inside;
  if (parameters) theta_inside = parameters->get_number("rope_theta");
  if (theta_inside) {
    if (theta_top && theta_top.value() != theta_inside.value()) {
      parameters->fail("rope_theta", fmt::format("({}) disagrees with rope_theta ({})", theta_inside.value(),
                                                 theta_top.value()));
    }
    rope.theta = theta_inside.value();
  } else if (theta_top) {
    rope.theta = theta_top.value();
  } else {
    reader.note("rope_theta", "10000");
  }
  if (!block) return rope;  // no scaling block: plain RoPE, no mscale

  std::string kind = rope_kind(*block);
  if (kind == "default") return rope;
  if (kind != "yarn") {
    block->fail(block->find("rope_type") ? "rope_type" : "type",
                fmt::format("'{}' is not supported (DeepSeek MLA models use \"yarn\" or \"default\")", kind));
  }
  rope.yarn = true;
  std::optional<double> factor = block->get_number("factor");
  if (!factor) block->fail("factor", "is required for yarn");
  rope.factor = *factor;
  // The YaRN defaults of the DeepSeek reference code (HF-remote, vLLM), MODEL_SPEC §1.3.
  FieldReader yarn_reader = reader.nested(*block);
  rope.original_max_position_embeddings = yarn_reader.integer("original_max_position_embeddings", 4096);
  rope.beta_fast = yarn_reader.number("beta_fast", 32.0);
  rope.beta_slow = yarn_reader.number("beta_slow", 1.0);
  rope.mscale = yarn_reader.number("mscale", 1.0);
  rope.mscale_all_dim = yarn_reader.number("mscale_all_dim", 0.0);
  return rope;
}

std::optional<Fp8Config> parse_quantization(const JsonFields& root, FieldReader& reader) {
  std::optional<JsonFields> q = root.get_object("quantization_config");
  if (!q) return std::nullopt;
  std::optional<std::string> method = q->get_string("quant_method");
  if (!method) q->fail("quant_method", "is required");
  if (*method != "fp8") {
    q->fail("quant_method", fmt::format("'{}' is not supported (only DeepSeek's block-scaled fp8)", *method));
  }
  FieldReader q_reader = reader.nested(*q);
  std::string format = q_reader.text("fmt", "e4m3");
  if (format != "e4m3") q->fail("fmt", fmt::format("'{}' is not supported (only e4m3)", format));
  std::optional<std::string> activations = q->get_string("activation_scheme");
  if (activations && *activations != "dynamic") {
    q->fail("activation_scheme",
            fmt::format("'{}' is not supported (activations are quantised dynamically)", *activations));
  }

  Fp8Config fp8;
  if (const nlohmann::json* block = q->find("weight_block_size")) {
    int64_t n = 0;
    int64_t k = 0;
    if (!block->is_array() || block->size() != 2 || !json_to_int64((*block)[0], &n) ||
        !json_to_int64((*block)[1], &k)) {
      q->fail("weight_block_size", "must be a list of two integers, got " + block->dump());
    }
    fp8.block_n = n;
    fp8.block_k = k;
  } else {
    q_reader.note("weight_block_size", "[128, 128]");
  }
  if (std::optional<std::string> scale = q->get_string("scale_fmt")) {
    if (*scale != "ue8m0") q->fail("scale_fmt", fmt::format("'{}' is not supported (only ue8m0)", *scale));
    fp8.scale_format = ScaleFormat::kUE8M0;
  }
  return fp8;
}

std::vector<int64_t> parse_eos(const JsonFields& root, FieldReader& reader, int64_t fallback) {
  const nlohmann::json* eos = root.find("eos_token_id");
  if (eos == nullptr) {
    reader.note("eos_token_id", fmt::format("{}", fallback));
    return {fallback};
  }
  std::vector<int64_t> ids;
  int64_t id = 0;
  if (json_to_int64(*eos, &id)) return {id};
  if (!eos->is_array() || eos->empty()) {
    root.fail("eos_token_id",
              "must be an integer or a non-empty list of integers, got " + json_describe(*eos));
  }
  for (const auto& item : *eos) {
    if (!json_to_int64(item, &id))
      root.fail("eos_token_id", "must list integers, got " + json_describe(item));
    ids.push_back(id);
  }
  return ids;
}

// topk_method after n_group is known: unknown spellings without groups read as greedy (§1.1).
TopkMethod parse_topk_method(const JsonFields& root, FieldReader& reader, const FamilyDefaults& defaults,
                             int64_t n_group) {
  std::optional<std::string> method = root.get_string("topk_method");
  if (!method) {
    reader.note("topk_method", topk_method_name(defaults.topk_method));
    return defaults.topk_method;
  }
  for (TopkMethod m : {TopkMethod::kGreedy, TopkMethod::kGroupLimitedGreedy, TopkMethod::kNoAuxTc}) {
    if (*method == topk_method_name(m)) return m;
  }
  if (n_group > 1) {
    root.fail("topk_method",
              fmt::format("'{}' is not a known method (greedy, group_limited_greedy, noaux_tc)", *method));
  }
  MLA_LOG_WARN("{}: topk_method '{}' is unknown; with no expert groups it is treated as greedy",
               root.source(), *method);
  return TopkMethod::kGreedy;
}

ScoringFunc parse_scoring(const JsonFields& root, FieldReader& reader, const FamilyDefaults& defaults) {
  std::string func = reader.text("scoring_func", scoring_func_name(defaults.scoring_func));
  if (func == "softmax") return ScoringFunc::kSoftmax;
  if (func == "sigmoid") return ScoringFunc::kSigmoid;
  root.fail("scoring_func", fmt::format("'{}' is not supported (softmax or sigmoid)", func));
}

// The MoE fields; a null n_routed_experts is a dense model, null groups are no groups.
void parse_moe(const JsonFields& root, FieldReader& reader, const FamilyDefaults& defaults,
               DeepSeekConfig& c) {
  c.n_routed_experts =
      root.is_null("n_routed_experts") ? 0 : reader.integer("n_routed_experts", defaults.n_routed_experts);
  c.n_shared_experts =
      root.is_null("n_shared_experts") ? 0 : reader.integer("n_shared_experts", defaults.n_shared_experts);
  c.moe_intermediate_size = reader.integer("moe_intermediate_size", defaults.moe_intermediate_size);
  if (c.n_routed_experts > 0) {
    if (root.is_null("num_experts_per_tok")) {
      root.fail("num_experts_per_tok",
                fmt::format("is null, but n_routed_experts is {}", c.n_routed_experts));
    }
    c.num_experts_per_tok = reader.integer("num_experts_per_tok", defaults.num_experts_per_tok);
  } else {
    c.num_experts_per_tok = root.get_int("num_experts_per_tok").value_or(0);
  }
  c.n_group = root.is_null("n_group") ? 1 : reader.integer("n_group", defaults.n_group);
  c.topk_group = root.is_null("topk_group") ? 1 : reader.integer("topk_group", defaults.topk_group);
  c.topk_method = parse_topk_method(root, reader, defaults, c.n_group);
  c.scoring_func = parse_scoring(root, reader, defaults);
  c.norm_topk_prob = reader.boolean("norm_topk_prob", defaults.norm_topk_prob);
  c.routed_scaling_factor = reader.number("routed_scaling_factor", defaults.routed_scaling_factor);
  c.first_k_dense_replace = reader.integer("first_k_dense_replace", defaults.first_k_dense_replace);
  c.moe_layer_freq = reader.integer("moe_layer_freq", 1);
}

DeepSeekConfig parse_fields(const JsonFields& root) {
  DeepSeekConfig c;
  c.family = parse_family(root);
  const FamilyDefaults& defaults = c.family == ModelFamily::kDeepSeekV3 ? kV3Defaults : kV2Defaults;
  std::vector<std::string> defaulted;
  FieldReader reader(root, c.family, defaulted);

  c.vocab_size = reader.integer("vocab_size", defaults.vocab_size);
  c.hidden_size = reader.integer("hidden_size", defaults.hidden_size);
  c.intermediate_size = reader.integer("intermediate_size", defaults.intermediate_size);
  c.num_hidden_layers = reader.integer("num_hidden_layers", defaults.num_hidden_layers);
  c.num_attention_heads = reader.integer("num_attention_heads", defaults.num_attention_heads);
  // MTP modules stored after the main layers: absent means none, without a warning, because
  // transformers' own V3 class never writes the field (and MTP layers are skipped by index).
  c.num_nextn_predict_layers = root.get_int("num_nextn_predict_layers").value_or(0);
  if (!root.is_null("q_lora_rank")) c.q_lora_rank = reader.integer("q_lora_rank", 1536);
  c.kv_lora_rank = reader.integer("kv_lora_rank", 512);
  c.qk_nope_head_dim = reader.integer("qk_nope_head_dim", 128);
  c.qk_rope_head_dim = reader.integer("qk_rope_head_dim", 64);
  c.v_head_dim = reader.integer("v_head_dim", 128);
  c.rms_norm_eps = reader.number("rms_norm_eps", 1e-6);
  c.max_position_embeddings = reader.integer("max_position_embeddings", defaults.max_position_embeddings);
  c.rope = parse_rope(root, reader);

  std::string act = reader.text("hidden_act", "silu");
  if (act != "silu") root.fail("hidden_act", fmt::format("'{}' is not supported (only silu)", act));
  require_bool(root, "attention_bias", false, "no linear layer of these models has a bias");
  require_bool(root, "mlp_bias", false, "no linear layer of these models has a bias");
  require_bool(root, "rope_interleave", true,
               "the rope channels of DeepSeek checkpoints are interleaved; a checkpoint stored in "
               "rotate-half order is not supported");

  parse_moe(root, reader, defaults, c);
  require_bool(root, "tie_word_embeddings", false,
               "the output head is read from lm_head.weight; no DeepSeek release ties it to the embedding");
  c.bos_token_id = reader.integer("bos_token_id", defaults.bos_token_id);
  c.eos_token_ids = parse_eos(root, reader, defaults.eos_token_id);
  c.fp8 = parse_quantization(root, reader);

  if (!defaulted.empty()) {
    MLA_LOG_WARN("{}: {} field(s) absent, using {} defaults (MODEL_SPEC §1.3): {}", root.source(),
                 defaulted.size(), family_name(c.family), fmt::join(defaulted, ", "));
  }
  return c;
}

}  // namespace

DeepSeekConfig parse_deepseek_config(std::string_view json_text, std::string_view source) {
  nlohmann::json document = parse_json_strict(json_text, source);
  DeepSeekConfig config = parse_fields(JsonFields(document, std::string(source)));
  try {
    finalize_config(config);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", source, e.what()));
  }
  return config;
}

DeepSeekConfig load_deepseek_config(const std::string& path) {
  std::filesystem::path file(path);
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) file /= "config.json";
  return parse_deepseek_config(read_text_file(file.string()), file.string());
}

}  // namespace mlaserve
