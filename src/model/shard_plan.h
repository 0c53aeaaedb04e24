// ShardPlan: which part of the model one rank holds when the model is split across ranks
// (tensor parallelism inside a group of tp_size ranks, pipeline stages over layer ranges).
// src/dist/partition.h computes it; the loader, the dummy weights (model/shard.h) and the
// forward pass only follow it. The default plan is the whole model on one rank.
//
// Tensor parallelism (rank r of a group of size p):
//   heads    attention heads [h0, h1): q_proj / q_b_proj rows h·192.., kv_b_proj rows h·256..,
//            o_proj columns h·128..; q_a_proj and kv_a_proj_with_mqa (the 576-wide latent) and
//            the latent cache are replicated
//   mlp      dense MLP intermediate channels: gate/up rows, down columns
//   shared   shared-expert intermediate channels, split like the dense MLP
//   experts  routed experts: all of them, each cut to the intermediate channels [c0, c1)
//            (expert_channels: gate/up rows, down columns, as the dense MLP), or with expert
//            parallelism the experts [e0, e1) held whole (dist/partition.h says which); the router
//            is replicated
//   vocab    lm_head rows [v0, v1), held as vocab_shard rows (zero rows pad the last shards)
// After o_proj and after the FFN each rank holds a partial sum: one all-reduce each. The
// logits of the shards are all-gathered by columns.
#pragma once

#include <cstdint>

namespace mlaserve {

struct IndexRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
  bool contains(int64_t i) const { return begin <= i && i < end; }
  bool operator==(const IndexRange&) const = default;
};

struct ShardPlan {
  int tp_size = 1, tp_rank = 0;  // tensor-parallel group
  int pp_size = 1, pp_rank = 0;  // pipeline stages
  IndexRange heads;              // attention heads held
  IndexRange mlp;                // dense MLP intermediate channels held
  IndexRange shared;             // shared-expert intermediate channels held
  IndexRange experts;            // routed experts held
  IndexRange expert_channels;    // intermediate channels held of each held routed expert
  IndexRange vocab;              // real lm_head rows held
  int64_t vocab_shard = 0;       // lm_head rows held, padded: ceil(V / tp_size)
  IndexRange layers;             // decoder layers of this pipeline stage

  bool first_stage() const { return pp_rank == 0; }
  bool last_stage() const { return pp_rank == pp_size - 1; }
};

}  // namespace mlaserve
