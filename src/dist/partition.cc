#include "dist/partition.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace mlaserve::dist {

IndexRange even_part(int64_t count, int parts, int index, const char* what) {
  MLA_CHECK(parts >= 1 && index >= 0 && index < parts, "part {} of {}", index, parts);
  MLA_CHECK(count % parts == 0, "{} {} do not split evenly over a tensor-parallel size of {}", count, what, parts);
  const int64_t size = count / parts;
  return {index * size, (index + 1) * size};
}

std::vector<int64_t> layer_costs(const DeepSeekConfig& c) {
  std::vector<int64_t> costs;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) costs.push_back(c.is_moe_layer(i) ? 2 : 1);
  return costs;
}

IndexRange layer_range(const std::vector<int64_t>& costs, int stages, int stage) {
  const auto n = static_cast<int64_t>(costs.size());
  MLA_CHECK(stages >= 1 && stage >= 0 && stage < stages, "stage {} of {}", stage, stages);
  MLA_CHECK(n >= stages, "{} layers cannot fill {} pipeline stages", n, stages);
  std::vector<int64_t> cum(static_cast<size_t>(n) + 1, 0);  // cum[k]: the cost of layers [0, k)
  for (int64_t i = 0; i < n; ++i) cum[static_cast<size_t>(i) + 1] = cum[static_cast<size_t>(i)] + costs[static_cast<size_t>(i)];
  // Boundary b (after stage b - 1): the layer count whose cost is nearest to b / stages of the
  // total (the smaller count on a tie), kept at least one layer from its neighbours.
  const auto boundary = [&](int b) -> int64_t {
    if (b == 0) return 0;
    if (b == stages) return n;
    // |stages · cum[k] - b · total|: the miss in units of 1 / stages of the total
    const auto miss = [&](int64_t k) { return std::abs(stages * cum[static_cast<size_t>(k)] - b * cum.back()); };
    int64_t best = b;
    for (int64_t k = b; k <= n - (stages - b); ++k) {
      if (miss(k) < miss(best)) best = k;
    }
    return best;
  };
  int64_t begin = 0;
  for (int b = 1; b <= stage; ++b) begin = std::max(begin + 1, boundary(b));
  const int64_t end = stage + 1 == stages ? n : std::max(begin + 1, boundary(stage + 1));
  return {begin, end};
}

ShardPlan make_shard_plan(const DeepSeekConfig& c, const ParallelConfig& parallel) {
  parallel.validate();
  const int p = parallel.tp_size, r = parallel.tp_rank();
  ShardPlan plan;
  plan.tp_size = p;
  plan.tp_rank = r;
  plan.pp_size = parallel.pp_size;
  plan.pp_rank = parallel.pp_rank();
  plan.heads = even_part(c.num_attention_heads, p, r, "attention heads");
  plan.mlp = even_part(c.intermediate_size, p, r, "dense MLP channels");
  plan.shared = c.n_shared_experts > 0 ? even_part(c.shared_intermediate_size(), p, r, "shared-expert channels")
                                       : IndexRange{};
  if (parallel.expert_split == ExpertSplit::kChannels) {
    plan.experts = {0, c.n_routed_experts};
    plan.expert_channels = even_part(c.moe_intermediate_size, p, r, "routed-expert channels");
  } else {
    plan.experts = even_part(c.n_routed_experts, p, r, "routed experts");
    plan.expert_channels = {0, c.moe_intermediate_size};
  }
  plan.vocab_shard = (c.vocab_size + p - 1) / p;
  plan.vocab = {std::min(c.vocab_size, r * plan.vocab_shard), std::min(c.vocab_size, (r + 1) * plan.vocab_shard)};
  plan.layers = layer_range(layer_costs(c), parallel.pp_size, plan.pp_rank);
  return plan;
}

}  // namespace mlaserve::dist
