// DeepSeekModel: the layer loop, embeddings, logits and the shared helpers (linear dispatch,
// RoPE table). Attention is in mla_block.cc, the feed-forward blocks in ffn_block.cc.
#include "model/model.h"

#include <algorithm>

#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/linear_fp8.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"

namespace mlaserve {

DeepSeekModel::DeepSeekModel(DeepSeekConfig config, ModelWeights weights, ModelOptions options)
    : config_(std::move(config)), weights_(std::move(weights)), options_(options) {
  MLA_CHECK(static_cast<int64_t>(weights_.layers.size()) == config_.num_hidden_layers,
            "model has {} layers of weights for a {}-layer config", weights_.layers.size(),
            config_.num_hidden_layers);
  MLA_CHECK(options_.context_chunk_tokens > 0, "context_chunk_tokens must be positive");
  if (config_.fp8 && config_.fp8->scale_format == ScaleFormat::kUE8M0) {
    act_quant_.scale_format = ops::Fp8ScaleFormat::kUE8M0;
  }
}

LatentCache DeepSeekModel::make_cache(int64_t num_blocks) const {
  return LatentCache(config_.num_hidden_layers, num_blocks, config_.kv_cache_dim, DType::kF32, Device::kCPU);
}

Tensor DeepSeekModel::linear(const Linear& w, const Tensor& x) const {
  Tensor out = Tensor::empty({x.dim(0), w.out_features()}, DType::kF32);
  if (w.is_fp8()) {
    ops::linear_fp8_cpu(x, w.weight, w.scale_inv, act_quant_, out);
  } else {
    ops::linear_cpu(x, w.weight, out);
  }
  return out;
}

const Tensor& DeepSeekModel::rope_table(int64_t max_position) {
  if (cos_sin_.defined() && cos_sin_.dim(0) > max_position) return cos_sin_;
  int64_t rows = 1024;
  while (rows <= max_position) rows *= 2;
  const RopeConfig& r = config_.rope;
  ops::RopeParams p{config_.qk_rope_head_dim, r.theta, r.yarn, r.factor, r.original_max_position_embeddings,
                    r.beta_fast, r.beta_slow, r.mscale, r.mscale_all_dim};
  cos_sin_ = Tensor::empty({rows, config_.qk_rope_head_dim}, DType::kF32);
  ops::build_rope_cos_sin_cpu(p, cos_sin_);
  return cos_sin_;
}

Tensor DeepSeekModel::forward(const ForwardBatch& batch, LatentCache& cache) {
  const int64_t t = batch.num_tokens(), hidden = config_.hidden_size;
  MLA_CHECK(t > 0, "forward: empty batch");
  MLA_CHECK(static_cast<int64_t>(batch.positions.size()) == t && static_cast<int64_t>(batch.slot_mapping.size()) == t,
            "forward: {} tokens but {} positions and {} slots", t, batch.positions.size(), batch.slot_mapping.size());
  MLA_CHECK(cache.num_layers() == config_.num_hidden_layers && cache.row_dim() == config_.kv_cache_dim,
            "forward: cache has {} layers of {}-wide rows, the model needs {} of {}", cache.num_layers(),
            cache.row_dim(), config_.num_hidden_layers, config_.kv_cache_dim);
  int64_t covered = 0;
  for (const SequenceSlice& s : batch.sequences) {
    MLA_CHECK(s.query_start == covered && s.query_len > 0 && s.context_len >= 0,
              "forward: sequence slices must tile the batch in order (start {}, len {}, expected start {})",
              s.query_start, s.query_len, covered);
    covered += s.query_len;
  }
  MLA_CHECK(covered == t, "forward: sequences cover {} of {} tokens", covered, t);

  Tensor ids = Tensor::empty({t}, DType::kI32);
  std::copy(batch.token_ids.begin(), batch.token_ids.end(), ids.data<int32_t>());
  Tensor positions = Tensor::empty({t}, DType::kI32);
  std::copy(batch.positions.begin(), batch.positions.end(), positions.data<int32_t>());
  rope_table(*std::max_element(batch.positions.begin(), batch.positions.end()));

  Tensor h = Tensor::empty({t, hidden}, DType::kF32);  // the residual stream
  ops::embedding_cpu(ids, weights_.embed, h);
  Tensor normed = Tensor::empty({t, hidden}, DType::kF32);
  const float eps = static_cast<float>(config_.rms_norm_eps);
  ops::rms_norm_cpu(h, weights_.layers[0].input_norm, eps, normed);
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    const LayerWeights& lw = weights_.layers[static_cast<size_t>(i)];
    Tensor attn_out = attention(i, normed, batch, positions, cache);
    ops::add_rms_norm_cpu(attn_out, h, lw.post_attn_norm, eps, normed);  // h += attn; normed = norm(h)
    Tensor ffn_out = ffn(i, normed);
    const Tensor& next_norm = i + 1 < config_.num_hidden_layers
                                  ? weights_.layers[static_cast<size_t>(i + 1)].input_norm
                                  : weights_.final_norm;
    ops::add_rms_norm_cpu(ffn_out, h, next_norm, eps, normed);  // h += ffn; normed = norm(h)
  }

  // Logits only for the rows that sample: `normed` already holds RMSNorm(h, model.norm).
  const int64_t r = static_cast<int64_t>(batch.logit_rows.size());
  Tensor rows = Tensor::empty({r}, DType::kI32);
  std::copy(batch.logit_rows.begin(), batch.logit_rows.end(), rows.data<int32_t>());
  Tensor selected = Tensor::empty({r, hidden}, DType::kF32);
  ops::embedding_cpu(rows, normed, selected);  // a row gather
  Tensor logits = Tensor::empty({r, config_.vocab_size}, DType::kF32);
  ops::linear_cpu(selected, weights_.lm_head, logits);
  return logits;
}

}  // namespace mlaserve
