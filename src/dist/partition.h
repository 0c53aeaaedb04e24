// The partition of a DeepSeek model over tensor-parallel ranks and pipeline stages: which
// heads, MLP channels, experts, vocabulary rows and layers each rank holds (the rules are in
// model/shard_plan.h). Pure functions of the config and the rank, so every rank computes every
// other rank's share the same way, and the CPU tests check the partition for any size.
//
// Even splits are required where the math needs them: heads, experts and MLP channels must
// divide by tp_size (with a clear error otherwise); the vocabulary may not (the last shards are
// padded); layers go to stages as evenly as possible, the earlier stages taking one more.
#pragma once

#include <cstdint>

#include "dist/parallel_config.h"
#include "model/config.h"
#include "model/shard_plan.h"

namespace mlaserve::dist {

// Part `index` of `count` items split into `parts` equal parts (count % parts == 0 required;
// `what` names the items in the error).
IndexRange even_part(int64_t count, int parts, int index, const char* what);

// Layers [begin, end) of stage `stage` of `stages`: sizes differ by at most one, later stages
// larger: the first stage also holds the embedding and the dense layers that DeepSeek puts first
// (first_k_dense_replace), and its rank 0 runs the engine and receives the logits. Every stage
// must get at least one layer.
IndexRange layer_range(int64_t num_layers, int stages, int stage);

ShardPlan make_shard_plan(const DeepSeekConfig& config, const ParallelConfig& parallel);

}  // namespace mlaserve::dist
