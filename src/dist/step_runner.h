// One engine step on one rank of a model split across ranks: every rank runs the same
// ForwardBatch (sent by rank 0, dist/control_channel.h) on its share of the model.
//
// Tensor parallelism only: one forward; every rank ends with the whole logits, rank 0 keeps them.
// With pipeline stages: the batch is cut into micro-batches (dist/micro_batch.h) run in order;
// the work is queued on each GPU's stream and the stages hand the residual stream on by NCCL
// send/recv, so stage s works on micro-batch i + 1 while stage s + 1 works on i. The last
// stage's tensor-parallel rank 0 concatenates the micro-batches' logits and sends them to rank 0
// once, after all micro-batches (sending each at once could deadlock: rank 0 is still sending
// residual streams to stage 1 on the same stream).
#pragma once

#include "core/collectives.h"
#include "dist/parallel_config.h"
#include "kv/latent_cache.h"
#include "model/model.h"

namespace mlaserve::dist {

struct StepGroups {
  ParallelConfig parallel;
  Collectives* world = nullptr;  // all ranks, numbered by global rank (pipeline stages only)
  int micro_batches = 1;         // per step, with pipeline stages
};

// Rank 0: the logits of batch.logit_rows [R, V] f32 on the model's device; other ranks: an
// undefined tensor.
Tensor run_step(DeepSeekModel& model, LatentCache& cache, const ForwardBatch& batch, const StepGroups& groups);

}  // namespace mlaserve::dist
