// One engine step on one rank of a model split across ranks: every rank runs the same
// ForwardBatch (sent by rank 0, dist/control_channel.h) on its share of the model.
//
// Tensor parallelism only: one forward; every rank ends with the whole logits, rank 0 keeps them.
// With pipeline stages: the batch may be cut into micro-batches (dist/micro_batch.h) run in
// order; the work is queued on each GPU's stream and the stages hand the residual stream on by
// NCCL send/recv over the pipeline group, so stage s works on micro-batch i + 1 while stage
// s + 1 works on i. The last stage's tensor-parallel rank 0 (logits_sender()) concatenates the
// micro-batches' logits and sends them to rank 0 once, after all micro-batches, over the world
// communicator, which carries nothing else: at once on the model's stream (run_step), or from a
// stream of its own under the engine, where rank 0 receives them behind a later step's share
// (dist/distributed_runner.h says where and why that cannot deadlock).
#pragma once

#include "core/collectives.h"
#include "dist/parallel_config.h"
#include "kv/latent_cache.h"
#include "model/model.h"

namespace mlaserve::dist {

struct StepGroups {
  ParallelConfig parallel;
  Collectives* world = nullptr;  // all ranks, numbered by global rank: the logits (pipelines only)
  int micro_batches = 1;         // per step, with pipeline stages
};

// The rank that returns a pipeline's logits to rank 0: the last stage's tensor-parallel rank 0.
int logits_sender(const ParallelConfig& parallel);

// The steps rank 0 keeps in flight over `parallel` for --pipeline-steps-in-flight `requested`
// (0: one per stage): 1 without pipeline stages (dist/distributed_runner.h).
int pipeline_steps_in_flight(const ParallelConfig& parallel, int requested);

// This rank's share of one step (its layers, over the step's micro-batches), queued on the
// model's stream. Returns the logits of batch.logit_rows [R, V] f32 on the ranks that have them
// (every rank with tensor parallelism only; the last stage's with pipeline stages, of which
// logits_sender() sends them on), an undefined tensor on the others.
Tensor run_share(DeepSeekModel& model, LatentCache& cache, const ForwardBatch& batch, const StepGroups& groups);

// A synchronous step (the tests' split runs; the engine's pipelines go through DistributedRunner
// and run_follower): run_share, then with pipeline stages the logits travel from logits_sender()
// to rank 0, both on the model's stream. Rank 0: the logits [R, V] f32 on the model's device;
// other ranks: an undefined tensor.
Tensor run_step(DeepSeekModel& model, LatentCache& cache, const ForwardBatch& batch, const StepGroups& groups);

}  // namespace mlaserve::dist
