#include "model/loader.h"

#include <fmt/format.h>

#include <set>
#include <string>

#include "core/logging.h"
#include "model/shard.h"
#include "ops/fp8_block.h"

namespace mlaserve {
namespace {

// "model.layers.12.mlp..." -> 12; -1 for names outside the layers.
int64_t layer_index(const std::string& name) {
  static constexpr std::string_view kPrefix = "model.layers.";
  if (!name.starts_with(kPrefix)) return -1;
  int64_t value = 0;
  size_t i = kPrefix.size();
  if (i >= name.size() || name[i] < '0' || name[i] > '9') return -1;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9' && value < (int64_t{1} << 40); ++i) {
    value = value * 10 + (name[i] - '0');
  }
  return value;
}

// Reads tensors by name, remembers which were used, and names file + tensor in every error.
class TensorSource {
 public:
  TensorSource(const Checkpoint& ckpt, const LoadOptions& options) : ckpt_(ckpt), options_(options) {}

  bool has(const std::string& name) const { return ckpt_.contains(name); }
  DType weight_dtype() const { return options_.weight_dtype; }

  // A non-quantised tensor (norms, embeddings, router): converted to `dtype`.
  Tensor dense(const std::string& name, const Shape& shape, DType dtype) {
    Tensor t = raw(name, shape);
    MLA_CHECK(t.dtype() == DType::kBF16 || t.dtype() == DType::kF16 || t.dtype() == DType::kF32,
              "{}: tensor {} has dtype {}, expected BF16, F16 or F32", file_of(name), name,
              dtype_name(t.dtype()));
    return convert(t, dtype);
  }

  Linear linear(const std::string& prefix, int64_t out, int64_t in) {
    const std::string name = prefix + ".weight";
    Tensor w = raw(name, {out, in});
    const std::string scale_name = name + "_scale_inv";
    if (w.dtype() != DType::kF8E4M3) {
      MLA_CHECK(!has(scale_name), "{}: {} has a scale ({}) but is not F8_E4M3", file_of(name), name,
                scale_name);
      return Linear{dense(name, {out, in}, options_.weight_dtype), {}};
    }
    MLA_CHECK(has(scale_name), "{}: FP8 weight {} has no {}", file_of(name), name, scale_name);
    Tensor scale = raw(scale_name, {(out + 127) / 128, (in + 127) / 128});
    MLA_CHECK(scale.dtype() == DType::kF32, "{}: {} must be F32, got {}", file_of(scale_name), scale_name,
              dtype_name(scale.dtype()));
    if (options_.fp8_mode == Fp8Mode::kW8A8) return Linear{w, scale};
    Tensor dense = Tensor::empty({out, in}, options_.weight_dtype);
    ops::dequantize_block_fp8_cpu(w, scale, dense);
    return Linear{dense, {}};
  }

  // Fails, naming both weights and their files, unless a and b (loaded as la and lb) are both
  // block-FP8 or both not: projections that one kernel runs together (W8A8 mode) need one format.
  void check_same_format(const std::string& a, const Linear& la, const std::string& b, const Linear& lb) const {
    auto format = [](const Linear& l) { return l.is_fp8() ? "block-FP8" : "not FP8"; };
    MLA_CHECK(la.is_fp8() == lb.is_fp8(),
              "{}: {}.weight is {} but {}.weight (in {}) is {}: the projections run together need one format "
              "(or load with --fp8-mode dequant)",
              file_of(a + ".weight"), a, format(la), b, file_of(b + ".weight"), format(lb));
  }

  // Marks every tensor under `prefix` as consumed (a layer of another pipeline stage).
  void skip(const std::string& prefix) {
    for (const std::string& n : ckpt_.names()) {
      if (n.starts_with(prefix)) used_.insert(n);
    }
  }

  // Names present in the checkpoint that no field consumed (MTP layers and inv_freq aside).
  std::vector<std::string> unused(const DeepSeekConfig& c) const {
    std::vector<std::string> out;
    for (const std::string& n : ckpt_.names()) {
      if (used_.count(n) || n.ends_with("rotary_emb.inv_freq")) continue;
      // MTP modules (§7) follow the main layers, as many as config.json announces: never main-model layers.
      const int64_t layer = layer_index(n);
      if (layer >= c.num_hidden_layers && layer < c.num_hidden_layers + c.num_nextn_predict_layers) continue;
      out.push_back(n);
    }
    return out;
  }

 private:
  std::string file_of(const std::string& name) const {
    return has(name) ? ckpt_.info(name).file : ckpt_.dir();
  }

  Tensor raw(const std::string& name, const Shape& shape) {
    MLA_CHECK(has(name), "{}: missing tensor {} (expected shape {})", ckpt_.dir(), name, shape_str(shape));
    const TensorInfo& info = ckpt_.info(name);
    MLA_CHECK(info.shape == shape, "{}: tensor {} has shape {}, expected {} from config.json", info.file,
              name, shape_str(info.shape), shape_str(shape));
    used_.insert(name);
    return ckpt_.get(name);
  }

  static Tensor convert(const Tensor& t, DType dtype) {
    return t.dtype() == dtype ? t : t.to_dtype(dtype);
  }

  const Checkpoint& ckpt_;
  LoadOptions options_;
  std::set<std::string> used_;
};

MlpWeights load_mlp(TensorSource& src, const std::string& prefix, int64_t hidden, int64_t width) {
  const Linear gate = src.linear(prefix + "gate_proj", width, hidden);
  const Linear up = src.linear(prefix + "up_proj", width, hidden);
  src.check_same_format(prefix + "gate_proj", gate, prefix + "up_proj", up);  // one GEMM: one format
  return MlpWeights{concat_rows(gate, up), src.linear(prefix + "down_proj", hidden, width)};
}

// The routed experts stacked as ops::ExpertWeights ([E, 2Im, H], [E, H, Im], scales alike).
ops::ExpertWeights load_experts(TensorSource& src, const std::string& prefix, const DeepSeekConfig& c) {
  std::vector<Tensor> gate_up, down, gate_up_scale, down_scale;
  // The experts' kernels take every projection of every expert in one format: that of expert 0's gate.
  const std::string first = prefix + "0.gate_proj";
  Linear first_gate;
  for (int64_t e = 0; e < c.n_routed_experts; ++e) {
    const std::string p = fmt::format("{}{}.", prefix, e);
    MlpWeights m = load_mlp(src, p, c.hidden_size, c.moe_intermediate_size);
    if (e == 0) first_gate = m.gate_up;
    src.check_same_format(first, first_gate, p + "down_proj", m.down);
    if (e > 0) src.check_same_format(first, first_gate, p + "gate_proj", m.gate_up);
    gate_up.push_back(m.gate_up.weight);
    down.push_back(m.down.weight);
    if (m.gate_up.is_fp8()) {
      gate_up_scale.push_back(m.gate_up.scale_inv);
      down_scale.push_back(m.down.scale_inv);
    }
  }
  ops::ExpertWeights w{stack(gate_up), stack(down), {}, {}};
  if (!gate_up_scale.empty()) {
    w.gate_up_scale = stack(gate_up_scale);
    w.down_scale = stack(down_scale);
  }
  return w;
}

MlaWeights load_attention(TensorSource& src, const std::string& p, const DeepSeekConfig& c,
                          DType norm_dtype) {
  const int64_t n = c.num_attention_heads, h = c.hidden_size, qk = c.qk_head_dim;
  MlaWeights a;
  if (c.q_lora_rank) {
    a.q_a_proj = src.linear(p + "q_a_proj", *c.q_lora_rank, h);
    a.q_a_norm = src.dense(p + "q_a_layernorm.weight", {*c.q_lora_rank}, norm_dtype);
    a.q_b_proj = src.linear(p + "q_b_proj", n * qk, *c.q_lora_rank);
  } else {
    a.q_proj = src.linear(p + "q_proj", n * qk, h);
  }
  a.kv_a_proj = src.linear(p + "kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_head_dim, h);
  a.kv_a_norm = src.dense(p + "kv_a_layernorm.weight", {c.kv_lora_rank}, norm_dtype);
  a.kv_b_proj = src.linear(p + "kv_b_proj", n * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank);
  a.o_proj = src.linear(p + "o_proj", h, n * c.v_head_dim);
  derive_kv_b_dense(a, src.weight_dtype());
  return a;
}

}  // namespace

void derive_kv_b_dense(MlaWeights& attn, DType dtype) {
  const Linear& kvb = attn.kv_b_proj;
  if (!kvb.is_fp8()) {
    attn.kv_b_dense = kvb.weight.dtype() == dtype ? kvb.weight : kvb.weight.to_dtype(dtype);
    return;
  }
  attn.kv_b_dense = Tensor::empty(kvb.weight.shape(), dtype);
  ops::dequantize_block_fp8_cpu(kvb.weight, kvb.scale_inv, attn.kv_b_dense);
}

ModelWeights load_weights(const Checkpoint& ckpt, const DeepSeekConfig& c, const LoadOptions& options) {
  MLA_CHECK(options.weight_dtype == DType::kF32 || options.weight_dtype == DType::kBF16,
            "weights load as F32 or BF16, not {}", dtype_name(options.weight_dtype));
  for (const std::string& n : ckpt.names()) {
    MLA_CHECK(!n.ends_with("experts.gate_up_proj") && !n.ends_with("experts.down_proj"),
              "{}: tensor {} uses transformers' fused in-memory expert layout; mlaserve reads the official "
              "per-expert layout (mlp.experts.{{e}}.gate_proj.weight ...)",
              ckpt.info(n).file, n);
  }
  TensorSource src(ckpt, options);
  const DType f32 = DType::kF32;  // norms and the correction bias stay f32 on every backend
  ModelWeights m;
  m.embed = src.dense("model.embed_tokens.weight", {c.vocab_size, c.hidden_size}, options.weight_dtype);
  const ShardPlan plan = options.shard ? *options.shard : whole_model_plan(c);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    if (!plan.layers.contains(i)) {
      src.skip(p);
      continue;
    }
    LayerWeights& l = m.layers.emplace_back();
    l.input_norm = src.dense(p + "input_layernorm.weight", {c.hidden_size}, f32);
    l.post_attn_norm = src.dense(p + "post_attention_layernorm.weight", {c.hidden_size}, f32);
    l.attn = load_attention(src, p + "self_attn.", c, f32);
    if (!c.is_moe_layer(i)) {
      l.mlp = load_mlp(src, p + "mlp.", c.hidden_size, c.intermediate_size);
      shard_layer(l, c, plan);
      continue;
    }
    MoeWeights moe;
    // bf16 in checkpoints: exact in weight_dtype, and the router GEMM accumulates in fp32 (§5.1).
    moe.router = src.dense(p + "mlp.gate.weight", {c.n_routed_experts, c.hidden_size}, options.weight_dtype);
    const std::string bias = p + "mlp.gate.e_score_correction_bias";
    if (c.topk_method == TopkMethod::kNoAuxTc) {
      moe.correction_bias = src.dense(bias, {c.n_routed_experts}, f32);
    }
    moe.experts = load_experts(src, p + "mlp.experts.", c);
    if (c.n_shared_experts > 0) {
      moe.shared = load_mlp(src, p + "mlp.shared_experts.", c.hidden_size, c.shared_intermediate_size());
    }
    l.moe = std::move(moe);
    shard_layer(l, c, plan);
  }
  m.final_norm = src.dense("model.norm.weight", {c.hidden_size}, f32);
  m.lm_head = shard_lm_head(src.dense("lm_head.weight", {c.vocab_size, c.hidden_size}, options.weight_dtype), plan);

  std::vector<std::string> extra = src.unused(c);
  if (!extra.empty()) {
    MLA_FAIL("{}: {} unexpected tensor(s) not used by a model of {} layers and {} MTP module(s) (config.json's "
             "num_hidden_layers and num_nextn_predict_layers), e.g. {} (in {})",
             ckpt.dir(), extra.size(), c.num_hidden_layers, c.num_nextn_predict_layers, extra.front(),
             ckpt.info(extra.front()).file);
  }
  return m;
}

}  // namespace mlaserve
