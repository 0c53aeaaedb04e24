// Cutting weights down to one rank's share (model/shard_plan.h says what each rank holds).
// Each function returns fresh copies of the share, on the weights' device, so that the full
// tensors can be freed right after: the loader and the dummy weights shard layer by layer,
// and a rank never holds more than its share plus one full layer.
#pragma once

#include "model/config.h"
#include "model/shard_plan.h"
#include "model/weights.h"

namespace mlaserve {

// The whole model on one rank (tp = pp = 1).
ShardPlan whole_model_plan(const DeepSeekConfig& config);

// True when `plan` holds every weight of `config` (no cutting needed).
bool holds_whole_model(const ShardPlan& plan, const DeepSeekConfig& config);

// Columns [begin, end) of a linear layer, copied (for FP8, begin and end must be multiples of
// 128 or end the matrix, and the scale columns are cut alike).
Linear linear_cols(const Linear& w, int64_t begin, int64_t end);

// Replaces the layer's tensor-parallel weights by copies of this rank's share.
void shard_layer(LayerWeights& layer, const DeepSeekConfig& config, const ShardPlan& plan);

// lm_head [V, H] -> this rank's [vocab_shard, H] (rows past the vocabulary are zeros).
Tensor shard_lm_head(const Tensor& lm_head, const ShardPlan& plan);

}  // namespace mlaserve
