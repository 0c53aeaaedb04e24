#include "model/dummy.h"

#include <cmath>

#include "model/loader.h"
#include "model/quantize_fp8.h"
#include "model/shard.h"
#include "ops/fp8_block.h"
#include "ops/random_fill.h"

namespace mlaserve {
namespace {

class DummyMaker {
 public:
  // quantize_layers: each layer kept is quantised to block FP8 as soon as it is made (bf16 on the
  // GPU), so that one layer at a time is held in bf16 (V3's 10 layers: 86 GB in FP8, 160 in bf16).
  DummyMaker(const DeepSeekConfig& c, const DummyOptions& o, bool quantize_layers = false)
      : c_(c),
        o_(o),
        seed_(o.seed),
        plan_(o.shard ? *o.shard : whole_model_plan(c)),
        quantize_layers_(quantize_layers) {}

  // A new tensor of `dtype` on `device`, uniform in [center - half_width, center + half_width).
  Tensor fill(const Shape& shape, float half_width, float center, DType dtype, Device device) {
    seed_ = seed_ * 6364136223846793005ull + 1442695040888963407ull;  // one stream per tensor
    Tensor t = Tensor::empty(shape, dtype, device);
    ops::fill_uniform(ops::UniformFill{seed_, half_width, center}, t);
    return t;
  }
  Tensor f32(const Shape& shape, float half_width, float center = 0.0f) {  // norms, bias: f32
    return fill(shape, half_width, center, DType::kF32, o_.device);
  }

  // uniform(-a, a) with a = sqrt(3 / fan_in): variance 1 / fan_in.
  static float fan_in_width(int64_t in) { return std::sqrt(3.0f / static_cast<float>(in)); }
  Tensor weight(int64_t out, int64_t in) { return fill({out, in}, fan_in_width(in), 0.0f, o_.weight_dtype, o_.device); }

  Linear linear(int64_t out, int64_t in) {
    if (!fp8()) return Linear{weight(out, in), {}};
    Tensor w = fill({out, in}, fan_in_width(in), 0.0f, DType::kF32, Device::kCPU);  // quantised on the host
    Linear l{Tensor::empty({out, in}, DType::kF8E4M3),
             Tensor::empty({ops::fp8_num_blocks(out), ops::fp8_num_blocks(in)}, DType::kF32)};
    ops::quantize_weight_block_fp8_cpu(w, l.weight, l.scale_inv);
    return l;
  }

  Tensor norm(int64_t d) { return f32({d}, 0.1f, 1.0f); }

  // gate_up as one [2I, H] matrix (gate rows, then up rows: the same distribution as two).
  MlpWeights mlp(int64_t width) {
    const int64_t h = c_.hidden_size;
    return MlpWeights{linear(2 * width, h), linear(h, width)};
  }

  // Stacked experts: BF16 filled in place ([E, 2Im, H], [E, H, Im]); FP8 quantised per expert.
  ops::ExpertWeights experts() {
    const int64_t e_count = c_.n_routed_experts, im = c_.moe_intermediate_size, h = c_.hidden_size;
    if (!fp8()) {
      return ops::ExpertWeights{fill({e_count, 2 * im, h}, fan_in_width(h), 0.0f, o_.weight_dtype, o_.device),
                                fill({e_count, h, im}, fan_in_width(im), 0.0f, o_.weight_dtype, o_.device), {}, {}};
    }
    std::vector<Tensor> gate_up, down, gate_up_scale, down_scale;
    for (int64_t e = 0; e < e_count; ++e) {
      MlpWeights m = mlp(im);
      gate_up.push_back(m.gate_up.weight);
      down.push_back(m.down.weight);
      gate_up_scale.push_back(m.gate_up.scale_inv);
      down_scale.push_back(m.down.scale_inv);
    }
    return ops::ExpertWeights{stack(gate_up), stack(down), stack(gate_up_scale), stack(down_scale)};
  }

  MlaWeights attention() {
    const int64_t n = c_.num_attention_heads, h = c_.hidden_size;
    MlaWeights a;
    if (c_.q_lora_rank) {
      a.q_a_proj = linear(*c_.q_lora_rank, h);
      a.q_a_norm = norm(*c_.q_lora_rank);
      a.q_b_proj = linear(n * c_.qk_head_dim, *c_.q_lora_rank);
    } else {
      a.q_proj = linear(n * c_.qk_head_dim, h);
    }
    a.kv_a_proj = linear(c_.kv_lora_rank + c_.qk_rope_head_dim, h);
    a.kv_a_norm = norm(c_.kv_lora_rank);
    a.kv_b_proj = linear(n * (c_.qk_nope_head_dim + c_.v_head_dim), c_.kv_lora_rank);
    a.o_proj = linear(h, n * c_.v_head_dim);
    derive_kv_b_dense(a, o_.weight_dtype);
    if (o_.device != Device::kCPU && a.kv_b_dense.is_cpu()) a.kv_b_dense = a.kv_b_dense.to(o_.device);
    return a;
  }

  ModelWeights model() {
    const int64_t h = c_.hidden_size;
    ModelWeights m;
    m.embed = fill({c_.vocab_size, h}, std::sqrt(3.0f), 0.0f, o_.weight_dtype, o_.device);  // unit variance
    for (int64_t i = 0; i < c_.num_hidden_layers; ++i) {
      LayerWeights l;
      l.input_norm = norm(h);
      l.post_attn_norm = norm(h);
      l.attn = attention();
      if (!c_.is_moe_layer(i)) {
        l.mlp = mlp(c_.intermediate_size);
      } else {
        MoeWeights moe;
        moe.router = weight(c_.n_routed_experts, h);
        // Near zero: the bias only selects, and one spread like the sigmoid scores' (it was
        // 0.05-0.45) sends most tokens to the same experts (~120 of V3's 256 touched by 64
        // tokens instead of ~222), so that a benchmark's step reads half the expert weights a
        // load-balanced checkpoint makes it read.
        if (c_.topk_method == TopkMethod::kNoAuxTc) moe.correction_bias = f32({c_.n_routed_experts}, 0.01f, 0.0f);
        moe.experts = experts();
        if (c_.n_shared_experts > 0) moe.shared = mlp(c_.shared_intermediate_size());
        l.moe = std::move(moe);
      }
      if (!plan_.layers.contains(i)) continue;  // drawn all the same: later tensors keep their seeds
      shard_layer(l, c_, plan_);
      if (quantize_layers_) quantize_layer_fp8(l);
      m.layers.push_back(std::move(l));
    }
    m.final_norm = norm(h);
    m.lm_head = shard_lm_head(weight(c_.vocab_size, h), plan_);
    return m;
  }

 private:
  bool fp8() const { return o_.fp8 || c_.fp8.has_value(); }

  const DeepSeekConfig& c_;
  const DummyOptions& o_;
  uint64_t seed_;
  ShardPlan plan_;
  bool quantize_layers_;
};

}  // namespace

uint64_t dummy_weight_bytes(const DeepSeekConfig& c, const DummyOptions& o) {
  // In double: exact below 2^53 bytes, and configs that pass validation can overflow 64-bit products.
  const bool fp8 = o.fp8 || c.fp8.has_value();
  const double wb = static_cast<double>(dtype_size(o.weight_dtype)), lb = fp8 ? 1.0 : wb;
  const auto h = static_cast<double>(c.hidden_size), n = static_cast<double>(c.num_attention_heads);
  const auto q_rank = static_cast<double>(c.q_lora_rank.value_or(0));
  const double attn = (c.q_lora_rank ? h * q_rank + q_rank * n * c.qk_head_dim : h * n * c.qk_head_dim) +
                      h * c.kv_cache_dim + n * (c.qk_nope_head_dim + c.v_head_dim) * c.kv_lora_rank +
                      n * c.v_head_dim * h;
  double total = 2.0 * c.vocab_size * h * wb;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const double ffn = c.is_moe_layer(i) ? 3.0 * h * c.moe_intermediate_size * (c.n_routed_experts + c.n_shared_experts)
                                         : 3.0 * h * c.intermediate_size;
    total += (attn + ffn) * lb;
  }
  return total < 0x1p64 ? static_cast<uint64_t>(total) : UINT64_MAX;
}

ModelWeights make_dummy_weights(const DeepSeekConfig& config, const DummyOptions& options) {
  MLA_CHECK(options.weight_dtype == DType::kF32 || options.weight_dtype == DType::kBF16,
            "dummy weights are F32 or BF16, not {}", dtype_name(options.weight_dtype));
  if ((options.fp8 || config.fp8) && options.device != Device::kCPU && options.weight_dtype == DType::kBF16) {
    // FP8 on the GPU: BF16 weights filled in place, then quantised there (model/quantize_fp8.h),
    // layer by layer.
    DeepSeekConfig plain = config;
    plain.fp8.reset();
    DummyOptions bf16 = options;
    bf16.fp8 = false;
    return DummyMaker(plain, bf16, /*quantize_layers=*/true).model();
  }
  const bool host_made = options.device == Device::kCPU || options.fp8 || config.fp8.has_value();
  const uint64_t bytes = dummy_weight_bytes(config, options);
  MLA_CHECK(!host_made || bytes <= options.max_host_bytes,
            "dummy weights of this config take {:.1f} GB on the host (limit {:.1f} GB): use a smaller config or "
            "the GPU backend",
            bytes / 1e9, options.max_host_bytes / 1e9);
  ModelWeights weights = DummyMaker(config, options).model();
  if (options.device != Device::kCPU) move_weights(weights, options.device);  // the FP8 tensors made on the host
  return weights;
}

}  // namespace mlaserve
