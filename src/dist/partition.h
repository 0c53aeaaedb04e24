// The partition of a DeepSeek model over tensor-parallel ranks and pipeline stages: which
// heads, MLP channels, experts, vocabulary rows and layers each rank holds (the rules are in
// model/shard_plan.h). Pure functions of the config and the rank, so every rank computes every
// other rank's share the same way, and the CPU tests check the partition for any size.
//
// Even splits are required where the math needs them: heads, experts and MLP channels must
// divide by tp_size (with a clear error otherwise); the vocabulary may not (the last shards are
// padded); layers go to stages by their cost (layer_costs), as evenly as contiguous ranges allow.
#pragma once

#include <cstdint>
#include <vector>

#include "dist/parallel_config.h"
#include "model/config.h"
#include "model/shard_plan.h"

namespace mlaserve::dist {

// Part `index` of `count` items split into `parts` equal parts (count % parts == 0 required;
// `what` names the items in the error).
IndexRange even_part(int64_t count, int parts, int index, const char* what);

// What a layer weighs when the layers are split over pipeline stages: 2 for a MoE layer, 1 for a
// dense one. At decode a dense layer reads a few hundred MB of weights where a MoE layer reads
// most of its experts (V2-Lite at 256 sequences: ~0.2 against ~0.5 ms); in a prefill they cost
// about the same (3.6 against 3.5 ms at 8,192 tokens; H200, 2026-11-29, bench/NOTES-dist.md).
std::vector<int64_t> layer_costs(const DeepSeekConfig& config);

// Layers [begin, end) of stage `stage` of `stages`, contiguous, each stage at least one layer:
// the boundary after stage s - 1 is where the layers' summed cost is nearest to s / stages of
// the whole (the earlier boundary on a tie). V2-Lite PP2: 14 + 13 (the dense layer and 13 MoE
// layers, then 13 MoE layers); V3 PP4: 16 + 15 + 15 + 15; equal costs: sizes differ by at most one.
IndexRange layer_range(const std::vector<int64_t>& costs, int stages, int stage);

// Rank `parallel.rank`'s share: 1/tp of the heads, the dense MLP and shared-expert channels and
// the vocabulary, of the routed experts as parallel.expert_split says, and its stage's layers.
// Routed experts: whole experts a rank (kExperts) read a token's experts on the ranks that hold
// them, at most 4 of 8 under V3's group-limited routing, so that a decode step of few tokens waits
// for the rank holding the most; a share of every expert's channels (kChannels) reads the same bytes
// on every rank. On one H200, a V3 FP8 TP8 rank alone (no all-reduces, bench/NOTES-dist.md,
// thirty-fifth and thirty-sixth sessions), graph ms: channels 5.04 at batch 1 against 5.4-6.2 for
// whole experts by rank; from 2 tokens within 0-5% of a whole-expert rank (batch 8 11.90 against
// 11.66 for rank 0, 64 27.51 against 26.43 for rank 0 and 26.5-31.6 over the ranks).
ShardPlan make_shard_plan(const DeepSeekConfig& config, const ParallelConfig& parallel);

}  // namespace mlaserve::dist
