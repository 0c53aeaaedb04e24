// DeepSeekModel: the layer loop, embeddings, logits and the shared helpers (linear dispatch,
// RoPE table). Attention is in mla_block.cc, the feed-forward blocks in ffn_block.cc.
#include "model/model.h"

#include <algorithm>

#include "core/upload.h"
#include "model/shard.h"

#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/linear_fp8.h"
#include "ops/rms_norm.h"
#include "ops/rms_norm_fp8.h"
#include "ops/rope.h"

namespace mlaserve {

DeepSeekModel::DeepSeekModel(DeepSeekConfig config, ModelWeights weights, ModelOptions options)
    : config_(std::move(config)), weights_(std::move(weights)), options_(options) {
  plan_ = options_.shard ? *options_.shard : whole_model_plan(config_);
  heads_ = plan_.heads.size();
  MLA_CHECK(static_cast<int64_t>(weights_.layers.size()) == plan_.layers.size(),
            "model has {} layers of weights for {} layers [{}, {}) of a {}-layer config", weights_.layers.size(),
            plan_.layers.size(), plan_.layers.begin, plan_.layers.end, config_.num_hidden_layers);
  MLA_CHECK(plan_.tp_size == 1 || (options_.tp_group && options_.tp_group->size() == plan_.tp_size),
            "a model split over {} tensor-parallel ranks needs a tensor-parallel group of that size", plan_.tp_size);
  MLA_CHECK(plan_.pp_size == 1 || (options_.pp_group && options_.pp_group->size() == plan_.pp_size),
            "a model split over {} pipeline stages needs a pipeline group of that size", plan_.pp_size);
  MLA_CHECK(options_.context_chunk_tokens > 0, "context_chunk_tokens must be positive");
  MLA_CHECK(weights_.embed.device() == options_.device, "the weights are on {}, the model is set to run on {}",
            device_name(weights_.embed.device()), device_name(options_.device));
  act_dtype_ = options_.device == Device::kCPU ? DType::kF32 : DType::kBF16;
  if (options_.device != Device::kCPU) route_arrivals_ = Tensor::zeros({1}, DType::kI32, options_.device);
  if (config_.fp8 && config_.fp8->scale_format == ScaleFormat::kUE8M0) {
    act_quant_.scale_format = ops::Fp8ScaleFormat::kUE8M0;
  }
}

void DeepSeekModel::set_profiling(bool on, bool host_clock) {
  const bool on_gpu = options_.device != Device::kCPU && !host_clock;
  timer_ = on ? std::make_unique<RegionTimer>(options_.stream, on_gpu) : nullptr;
  profile_.clear();
}

void DeepSeekModel::set_stage_clock(bool on) {
  stage_clock_ = on ? std::make_unique<StageClock>(options_.stream, options_.device != Device::kCPU) : nullptr;
}

const RegionTotals& DeepSeekModel::stage_profile() {
  static const RegionTotals kNone;
  return stage_clock_ ? stage_clock_->totals() : kNone;
}

LatentCache DeepSeekModel::make_cache(int64_t num_blocks) const {
  return LatentCache(plan_.layers.size(), num_blocks, cache_row_dim(), act_dtype_, options_.device);
}

int64_t DeepSeekModel::cache_row_dim() const {
  if (options_.kv_cache_layout == KvCacheLayout::kLatent) return config_.kv_cache_dim;
  return heads_ * (config_.qk_nope_head_dim + config_.qk_rope_head_dim + config_.v_head_dim);
}

Tensor DeepSeekModel::device_i32(const std::vector<int32_t>& values) const {
  if (options_.device != Device::kCPU) return upload_async(values, options_.stream);
  Tensor t = Tensor::empty({static_cast<int64_t>(values.size())}, DType::kI32);
  std::copy(values.begin(), values.end(), t.data<int32_t>());
  return t;
}

void DeepSeekModel::linear_into(const Linear& w, const Tensor& x, Tensor& out, std::optional<Stream> stream,
                                ops::GridPlacement placement, const ops::L2Prefetches& prefetch) const {
  const Stream s = stream.value_or(options_.stream);
  if (w.is_fp8()) {
    ops::linear_fp8(x, w.weight, w.scale_inv, act_quant_, out, s, placement);
  } else {
    ops::linear(x, w.weight, out, s, prefetch);
  }
}

Tensor DeepSeekModel::linear(const Linear& w, const Tensor& x, std::optional<Stream> stream) const {
  Tensor out = act({x.dim(0), w.out_features()});
  linear_into(w, x, out, stream);
  return out;
}

void DeepSeekModel::linear_into(const Linear& w, const NormedActivation& x, Tensor& out,
                                std::optional<Stream> stream, ops::GridPlacement placement,
                                const ops::L2Prefetches& prefetch) const {
  if (!w.is_fp8() || !x.q.defined()) return linear_into(w, x.x, out, stream, placement, prefetch);
  ops::linear_fp8_w8a8(x.q, w.weight, w.scale_inv, out, stream.value_or(options_.stream), placement);
}

Tensor DeepSeekModel::linear(const Linear& w, const NormedActivation& x, std::optional<Stream> stream,
                             ops::GridPlacement placement) const {
  Tensor out = act({x.x.dim(0), w.out_features()});
  linear_into(w, x, out, stream, placement);
  return out;
}

bool DeepSeekModel::attention_reads_fp8(int64_t layer) const {
  const MlaWeights& w = weights_.layers[static_cast<size_t>(layer)].attn;
  const Linear& q = w.q_proj ? *w.q_proj : *w.q_a_proj;
  return q.is_fp8() || w.kv_a_proj.is_fp8();
}

// As moe_routed reads its input: the shared experts through linear(), the routed experts'
// quantised rows where the grouped FP8 GEMMs take them, or the token rows' codes where their GEMV
// would rather copy those than quantise the rows itself.
bool DeepSeekModel::ffn_reads_fp8(int64_t layer, int64_t t) const {
  const LayerWeights& lw = weights_.layers[static_cast<size_t>(layer)];
  if (lw.mlp) return lw.mlp->gate_up.is_fp8();
  const MoeWeights& m = *lw.moe;
  const int64_t rows = t * config_.num_experts_per_tok;
  return (m.shared && m.shared->gate_up.is_fp8()) ||
         ops::moe_experts_takes_quantized_rows(options_.device, rows, m.experts) ||
         ops::moe_experts_wants_token_codes(options_.device, t, rows, m.experts);
}

// The norms quantise only where that pays: on the GPU from two tokens a step, or at any step for
// rows as wide as V3's (ops::fp8_norm_quantization_pays has the rule and the H200's figures).
ops::Fp8Activations DeepSeekModel::fp8_input(int64_t t, int64_t k, bool wanted, bool group_major) const {
  if (!wanted || !options_.quantize_in_norms || !ops::fp8_norm_quantization_pays(options_.device, t, k)) return {};
  return fp8_buffers(t, k, group_major);
}

ops::Fp8Activations DeepSeekModel::fp8_buffers(int64_t t, int64_t k, bool group_major) const {
  const int64_t groups = ops::fp8_num_blocks(k);
  return {Tensor::empty({t, k}, DType::kF8E4M3, options_.device), f32({t, groups}),   // [T, K], [T, K/128]
          group_major && options_.device != Device::kCPU ? f32({groups, t}) : Tensor()};  // [K/128, T]
}

std::optional<ForkedBranch> DeepSeekModel::fork_side_branch() {
  if (!options_.side_stream || options_.device != Device::kCUDA) return std::nullopt;
  if (!side_.enabled()) side_ = SideStream::create(true);
  return std::optional<ForkedBranch>(std::in_place, side_, options_.stream);
}

const Tensor& DeepSeekModel::rope_table(int64_t max_position) {
  if (cos_sin_.defined() && cos_sin_.dim(0) > max_position) return cos_sin_;
  int64_t rows = 1024;
  while (rows <= max_position) rows *= 2;
  const RopeConfig& r = config_.rope;
  ops::RopeParams p{config_.qk_rope_head_dim, r.theta, r.yarn, r.factor, r.original_max_position_embeddings,
                    r.beta_fast, r.beta_slow, r.mscale, r.mscale_all_dim};
  Tensor table = Tensor::empty({rows, config_.qk_rope_head_dim}, DType::kF32);
  ops::build_rope_cos_sin_cpu(p, table);  // built once on the host, then kept on the device
  cos_sin_ = options_.device == Device::kCPU ? table : table.to(options_.device);
  return cos_sin_;
}

}  // namespace mlaserve
