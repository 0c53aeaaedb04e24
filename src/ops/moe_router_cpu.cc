#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/moe_router.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "moe_route_cpu";
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

void check_inputs(const Tensor& logits, const Tensor& bias, const RouterParams& p, const RouterOutputs& o) {
  cpu::check_f32(kOp, "logits", logits);
  MLA_CHECK(logits.ndim() == 2, "{}: logits {} must be [T, E]", kOp, shape_str(logits.shape()));
  const int64_t t = logits.dim(0), e = logits.dim(1);
  if (p.method == RouterTopkMethod::kNoAuxTc) {
    cpu::check_f32(kOp, "correction_bias", bias);
    cpu::check_shape(kOp, "correction_bias", bias, {e});
  } else {
    MLA_CHECK(!bias.defined(), "{}: a correction bias is only used by noaux_tc routing", kOp);
  }
  const bool grouped = p.method != RouterTopkMethod::kGreedy;
  const int64_t groups = grouped ? p.n_group : 1, kept = grouped ? p.topk_group : 1;
  MLA_CHECK(groups >= 1 && e % groups == 0 && kept >= 1 && kept <= groups,
            "{}: {} experts cannot be split into n_group = {} keeping topk_group = {}", kOp, e, groups, kept);
  MLA_CHECK(p.top_k >= 1 && p.top_k <= kept * (e / groups),
            "{}: top_k = {} must be in [1, {}] ({} experts, {} of {} groups kept)", kOp, p.top_k,
            kept * (e / groups), e, kept, groups);
  if (p.method == RouterTopkMethod::kNoAuxTc) {
    MLA_CHECK(e / groups >= 2, "{}: noaux_tc group scores need >= 2 experts per group, got {}", kOp,
              e / groups);
  }
  if (p.row_slots.defined()) {
    cpu::check_host(kOp, "row_slots", p.row_slots);
    MLA_CHECK(p.row_slots.dtype() == DType::kI64, "{}: row_slots must be I64", kOp);
    cpu::check_shape(kOp, "row_slots", p.row_slots, {t});
  }
  cpu::check_f32(kOp, "weights", o.weights);
  cpu::check_shape(kOp, "weights", o.weights, {t, p.top_k});
  cpu::check_host(kOp, "expert_ids", o.expert_ids);
  MLA_CHECK(o.expert_ids.dtype() == DType::kI32, "{}: expert_ids must be I32, got {}", kOp,
            dtype_name(o.expert_ids.dtype()));
  cpu::check_shape(kOp, "expert_ids", o.expert_ids, {t, p.top_k});
}

void score(const float* logits, int64_t e, RouterScoring scoring, float* s) {
  if (scoring == RouterScoring::kSigmoid) {
    for (int64_t i = 0; i < e; ++i) s[i] = 1.0f / (1.0f + std::exp(-logits[i]));
    return;
  }
  const float m = *std::max_element(logits, logits + e);
  float sum = 0.0f;
  for (int64_t i = 0; i < e; ++i) {
    s[i] = std::exp(logits[i] - m);
    sum += s[i];
  }
  for (int64_t i = 0; i < e; ++i) s[i] /= sum;
}

// The first `count` indices of values, best first: larger value, then lower index.
void top_indices(const std::vector<float>& values, int64_t count, std::vector<int32_t>& order) {
  order.resize(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + count, order.end(), [&](int32_t a, int32_t b) {
    return values[a] > values[b] || (values[a] == values[b] && a < b);
  });
  order.resize(static_cast<size_t>(count));
}

// Sets the selection scores of experts outside the topk_group best groups to -inf.
void mask_groups(const RouterParams& p, std::vector<float>& b) {
  const auto e = static_cast<int64_t>(b.size());
  const int64_t per_group = e / p.n_group;
  std::vector<float> group_score(static_cast<size_t>(p.n_group));
  std::vector<int32_t> order;
  for (int64_t g = 0; g < p.n_group; ++g) {
    std::vector<float> members(b.begin() + g * per_group, b.begin() + (g + 1) * per_group);
    if (p.method == RouterTopkMethod::kNoAuxTc) {
      top_indices(members, 2, order);
      group_score[g] = members[order[0]] + members[order[1]];
    } else {
      group_score[g] = *std::max_element(members.begin(), members.end());
    }
  }
  top_indices(group_score, p.topk_group, order);
  std::vector<bool> kept(static_cast<size_t>(p.n_group), false);
  for (int32_t g : order) kept[g] = true;
  for (int64_t i = 0; i < e; ++i) {
    if (!kept[i / per_group]) b[i] = kNegInf;
  }
}

void finish_weights(const RouterParams& p, float* w) {
  const bool normalize = p.weighting == RouterWeighting::kNormalizeThenScale
                             ? p.norm_topk_prob
                             : p.norm_topk_prob && p.top_k > 1;
  const bool scale = p.weighting == RouterWeighting::kNormalizeThenScale || !normalize;
  if (normalize) {
    float sum = 0.0f;
    for (int64_t j = 0; j < p.top_k; ++j) sum += w[j];
    for (int64_t j = 0; j < p.top_k; ++j) w[j] /= sum + 1e-20f;
  }
  if (scale) {
    for (int64_t j = 0; j < p.top_k; ++j) w[j] *= p.routed_scaling_factor;
  }
}

}  // namespace

void moe_route_cpu(const Tensor& logits, const Tensor& correction_bias, const RouterParams& params,
                   RouterOutputs& outputs) {
  check_inputs(logits, correction_bias, params, outputs);
  const int64_t t = logits.dim(0), e = logits.dim(1), k = params.top_k;
  const float* bias = correction_bias.defined() ? correction_bias.data<float>() : nullptr;
  std::vector<float> s(static_cast<size_t>(e)), b;
  std::vector<int32_t> order;
  const int64_t* slots = params.row_slots.defined() ? params.row_slots.data<int64_t>() : nullptr;
  const int64_t real = slots != nullptr ? std::count_if(slots, slots + t, [](int64_t s) { return s >= 0; }) : t;
  for (int64_t i = 0; i < t; ++i) {
    const int64_t src = slots != nullptr && slots[i] < 0 && real > 0 ? i % real : i;  // padding: RouterParams
    score(logits.data<float>() + src * e, e, params.scoring, s.data());
    b = s;
    if (bias != nullptr) {
      for (int64_t j = 0; j < e; ++j) b[j] += bias[j];
    }
    if (params.method != RouterTopkMethod::kGreedy) mask_groups(params, b);
    top_indices(b, k, order);
    float* w = outputs.weights.data<float>() + i * k;
    int32_t* ids = outputs.expert_ids.data<int32_t>() + i * k;
    for (int64_t j = 0; j < k; ++j) {
      ids[j] = order[j];
      w[j] = s[order[j]];
    }
    finish_weights(params, w);
  }
}

}  // namespace mlaserve::ops
