// DeepSeekModel's communication under tensor parallelism (model/shard_plan.h): the all-reduce
// of the partial outputs of o_proj and the FFN, and the vocabulary-parallel logits.
#include "model/model.h"
#include "ops/embedding.h"
#include "ops/linear.h"

namespace mlaserve {

void DeepSeekModel::all_reduce(Tensor& partial) {
  if (plan_.tp_size > 1) options_.tp_group->all_reduce_sum(partial, options_.stream);
}

// Logits of the sampled rows only: RMSNorm(h) rows gathered, then this rank's lm_head shard
// [Vs, H] gives [R, Vs]; the shards' columns are gathered into [R, V] on every rank.
Tensor DeepSeekModel::compute_logits(const Tensor& normed, const Tensor& rows) {
  const int64_t r = rows.dim(0), hidden = config_.hidden_size;
  const Stream stream = options_.stream;
  if (r == 0) return f32({0, config_.vocab_size});  // a pipeline micro-batch that samples nothing
  Tensor selected = act({r, hidden});
  ops::embedding(rows, normed, selected, stream);  // a row gather
  Tensor local = f32({r, plan_.vocab_shard});                  // [R, Vs]
  ops::linear(selected, weights_.lm_head, local, stream);
  if (plan_.tp_size == 1) return local;
  Tensor logits = f32({r, config_.vocab_size});
  options_.tp_group->all_gather_columns(local, logits, stream);
  return logits;
}

}  // namespace mlaserve
