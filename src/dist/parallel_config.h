// ParallelConfig: how many processes (one per GPU) a model is split over and which one this is.
//
// Rank layout: rank = pp_rank · tp_size + tp_rank. The ranks of one tensor-parallel group are
// consecutive, so that with one process per GPU and the GPUs of a machine numbered alike, a
// group sits on one machine's fast links; pipeline stages may span machines (one send of the
// residual stream per step and micro-batch).
#pragma once

#include "core/error.h"

namespace mlaserve::dist {

// How tensor-parallel ranks share the routed experts (--expert-split; make_shard_plan,
// dist/partition.h): a share of the experts held whole (expert parallelism), or a share of every
// expert's intermediate channels.
enum class ExpertSplit { kExperts, kChannels };

struct ParallelConfig {
  int tp_size = 1;  // --tensor-parallel-size
  int pp_size = 1;  // --pipeline-parallel-size
  int rank = 0;     // global rank in [0, world_size())
  ExpertSplit expert_split = ExpertSplit::kExperts;  // --expert-split

  int world_size() const { return tp_size * pp_size; }
  int tp_rank() const { return rank % tp_size; }
  int pp_rank() const { return rank / tp_size; }
  // The global rank of tensor-parallel rank `tp` of stage `pp`.
  int rank_of(int pp, int tp) const { return pp * tp_size + tp; }

  void validate() const {
    MLA_CHECK(tp_size >= 1 && pp_size >= 1, "tensor- and pipeline-parallel sizes must be at least 1 (got {} and {})",
              tp_size, pp_size);
    MLA_CHECK(rank >= 0 && rank < world_size(), "rank {} outside a world of {} ranks", rank, world_size());
  }
};

}  // namespace mlaserve::dist
