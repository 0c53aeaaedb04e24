#include "dist/partition.h"

#include <algorithm>

namespace mlaserve::dist {

IndexRange even_part(int64_t count, int parts, int index, const char* what) {
  MLA_CHECK(parts >= 1 && index >= 0 && index < parts, "part {} of {}", index, parts);
  MLA_CHECK(count % parts == 0, "{} {} do not split evenly over a tensor-parallel size of {}", count, what, parts);
  const int64_t size = count / parts;
  return {index * size, (index + 1) * size};
}

IndexRange layer_range(int64_t num_layers, int stages, int stage) {
  MLA_CHECK(stages >= 1 && stage >= 0 && stage < stages, "stage {} of {}", stage, stages);
  MLA_CHECK(num_layers >= stages, "{} layers cannot fill {} pipeline stages", num_layers, stages);
  const int64_t base = num_layers / stages, extra = num_layers % stages;
  const int64_t smaller = stages - extra;  // the first `smaller` stages get `base` layers
  const int64_t begin = stage * base + std::max<int64_t>(0, stage - smaller);
  return {begin, begin + base + (stage >= smaller ? 1 : 0)};
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
  plan.experts = even_part(c.n_routed_experts, p, r, "routed experts");
  plan.vocab_shard = (c.vocab_size + p - 1) / p;
  plan.vocab = {std::min(c.vocab_size, r * plan.vocab_shard), std::min(c.vocab_size, (r + 1) * plan.vocab_shard)};
  plan.layers = layer_range(c.num_hidden_layers, parallel.pp_size, plan.pp_rank);
  return plan;
}

}  // namespace mlaserve::dist
