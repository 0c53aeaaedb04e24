// The feed-forward blocks of DeepSeekModel (MODEL_SPEC.md §2, §5): the dense SwiGLU MLP of the
// first layers and the MoE of the rest (router in fp32, routed experts over the tokens that
// chose them, weighted combine accumulated onto the shared experts' output).
#include "model/model.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/moe_dispatch.h"
#include "ops/moe_router.h"
#include "ops/silu_mul.h"

namespace mlaserve {
namespace {

ops::RouterParams router_params(const DeepSeekConfig& c) {
  ops::RouterParams p;
  p.scoring = c.scoring_func == ScoringFunc::kSigmoid ? ops::RouterScoring::kSigmoid : ops::RouterScoring::kSoftmax;
  switch (c.topk_method) {
    case TopkMethod::kGreedy: p.method = ops::RouterTopkMethod::kGreedy; break;
    case TopkMethod::kGroupLimitedGreedy: p.method = ops::RouterTopkMethod::kGroupLimitedGreedy; break;
    case TopkMethod::kNoAuxTc: p.method = ops::RouterTopkMethod::kNoAuxTc; break;
  }
  p.weighting = c.family == ModelFamily::kDeepSeekV2 ? ops::RouterWeighting::kNormalizeOrScale
                                                     : ops::RouterWeighting::kNormalizeThenScale;
  p.n_group = c.n_group;
  p.topk_group = c.topk_group;
  p.top_k = c.num_experts_per_tok;
  p.norm_topk_prob = c.norm_topk_prob;
  p.routed_scaling_factor = static_cast<float>(c.routed_scaling_factor);
  return p;
}

}  // namespace

Tensor DeepSeekModel::mlp(const MlpWeights& w, const Tensor& x) {
  Tensor gate = linear(w.gate, x);  // [T, I]
  Tensor up = linear(w.up, x);      // [T, I]
  Tensor act = Tensor::empty(gate.shape(), DType::kF32);
  ops::silu_mul_cpu(gate, up, act);
  return linear(w.down, act);  // [T, H]
}

Tensor DeepSeekModel::ffn(int64_t layer, const Tensor& m) {
  const LayerWeights& lw = weights_.layers[static_cast<size_t>(layer)];
  return lw.moe ? moe(*lw.moe, m) : mlp(*lw.mlp, m);
}

Tensor DeepSeekModel::moe(const MoeWeights& w, const Tensor& m) {
  const int64_t t = m.dim(0), hidden = config_.hidden_size, k = config_.num_experts_per_tok;
  const int64_t num_experts = config_.n_routed_experts;

  Tensor logits = Tensor::empty({t, num_experts}, DType::kF32);  // fp32 router GEMM (§5.1)
  ops::linear_cpu(m, w.router, logits);
  ops::RouterOutputs route{Tensor::empty({t, k}, DType::kF32), Tensor::empty({t, k}, DType::kI32)};
  ops::moe_route_cpu(logits, w.correction_bias, router_params(config_), route);

  ops::MoeGrouping groups{Tensor::empty({num_experts + 1}, DType::kI32), Tensor::empty({t * k}, DType::kI32),
                          Tensor::empty({t * k}, DType::kI32)};
  ops::moe_group_by_expert_cpu(route.expert_ids, num_experts, groups);
  Tensor gathered = Tensor::empty({t * k, hidden}, DType::kF32);  // token rows in expert order
  ops::embedding_cpu(groups.sorted_tokens, m, gathered);
  Tensor expert_out = Tensor::empty({t * k, hidden}, DType::kF32);
  const int32_t* offsets = groups.expert_offsets.data<int32_t>();
  for (int64_t e = 0; e < num_experts; ++e) {
    if (offsets[e] == offsets[e + 1]) continue;
    Tensor y = mlp(w.experts[static_cast<size_t>(e)], gathered.slice(offsets[e], offsets[e + 1]));
    std::copy(y.data<float>(), y.data<float>() + y.numel(), expert_out.data<float>() + offsets[e] * hidden);
  }
  Tensor out = w.shared ? mlp(*w.shared, m) : Tensor::zeros({t, hidden}, DType::kF32);
  ops::moe_combine_cpu(expert_out, groups.sorted_pairs, route.weights, out);
  return out;
}

}  // namespace mlaserve
