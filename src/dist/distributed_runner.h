// The engine over a model split across processes. Rank 0 alone runs the engine (scheduler,
// sampler, and later the HTTP server); DistributedRunner is its ModelRunner: each step it sends
// the ForwardBatch to every other rank (the step plan, dist/control_channel.h) and runs its own
// share of the step (dist/step_runner.h); the logits stay on rank 0's GPU for the engine's
// sampler. The other ranks run run_follower(): they wait for the next step plan, run their
// share, and return when rank 0 says stop (its runner's destructor). Every rank holds a cache of
// the same number of blocks for its own layers; the block ids in the batch index each rank's
// cache alike.
//
// Steps in flight (pipelines). With p stages the runner keeps up to p steps in flight
// (ModelRunner::submit/wait; LaunchOptions::steps_in_flight): submit() sends the plan, queues
// stage 0's share on rank 0's stream and, on a second stream of rank 0's (non-blocking, so the
// legacy stream never waits for it), the receive of the step's logits from the last stage; it
// returns without waiting. While stage 1 runs step n, stage 0 already runs step n + 1, which the
// engine scheduled from other sequences. wait() waits on the host for the oldest step's logits
// (an event recorded after their receive), so the engine's sampler reads them in order, on a
// third stream with nothing queued before it (sampling_stream()). The followers need no
// change: each runs the plans in order, and the last stage sends each step's logits when its
// share is done, as for a synchronous step.
//
// Why this cannot deadlock. The communicators: each stage's tensor-parallel group (all-reduces)
// and the pipeline groups (residual hand-offs from stage s to s + 1) are used on every rank's
// model stream; the world communicator carries only the logits, from the last stage's
// tensor-parallel rank 0 (on its model stream) to rank 0 (on the logits stream). So each
// communicator is used on one stream per rank, and every rank queues its operations step by
// step in submission order. An operation of step n at stage s waits only for (a) the operations
// queued before it on its stream: steps < n, or step n at stages <= s; (b) its peers' matching
// operation: the same step at the same stage (an all-reduce), at stage s - 1 (a residual
// receive), or at the last stage (the logits receive on rank 0, whose stream also waits for
// rank 0's own work of steps <= n, an event recorded at submit); (c) rank 0's host, in wait(),
// waits for the logits of the oldest step, whose operations are all queued already (every
// plan is sent before its share is queued). Every wait points to an earlier step, or to the
// same step at an earlier or the same stage, so the waits have no cycle and every queued
// operation completes. Both streams hold at most one NCCL kernel at a time each, a few
// thread blocks each, so they are resident side by side on the GPU (NCCL's warning about
// concurrent communicators is about kernels that cannot all be resident at once).
//
// Failures (over a DistContext): rank 0's watchdog is armed while the runner lives, a
// follower's while it runs a step (dist/watchdog.h). A step that throws on rank 0 or on a
// follower ends the run on every rank (DistContext::fail); from then on every step on rank 0
// fails at once with the reason, and the engine fails the requests in it.
#pragma once

#include <deque>

#include "dist/context.h"
#include "dist/step_runner.h"
#include "engine/model_runner.h"
#include "kv/latent_cache.h"
#include "model/model.h"

namespace mlaserve::dist {

class DistributedRunner final : public ModelRunner {
 public:
  // `model` and `dist` must outlive the runner; rank 0 only.
  DistributedRunner(DeepSeekModel& model, int32_t num_cache_blocks, DistContext& dist);
  // The same over given groups (a test's layout split from its world): steps_in_flight 0 is one
  // per stage; `channel` must outlive the runner.
  DistributedRunner(DeepSeekModel& model, int32_t num_cache_blocks, ControlChannel& channel, const StepGroups& groups,
                    int steps_in_flight);
  ~DistributedRunner() override;  // waits for the steps in flight, then the other ranks stop

  ModelRunnerInfo info() const override;
  Tensor execute(const ForwardBatch& batch) override;
  int max_in_flight() const override { return max_in_flight_; }
  // With steps in flight, a stream of its own: sampling step N must not queue behind stage 0's
  // step N + 1 on the model's stream, nor behind step N + 1's logits on the logits stream (the
  // host has waited for step N's logits before it samples them).
  Stream sampling_stream() const override { return Stream{sampling_stream_}; }
  void submit(const ForwardBatch& batch) override;
  Tensor wait() override;

 private:
  struct InFlight {
    Tensor logits;            // [R, V] f32 on rank 0's GPU, written by the logits stream
    void* arrived = nullptr;  // cudaEvent_t recorded on the logits stream after the receive
  };

  void queue_step(const ForwardBatch& batch);
  void check_alive() const;                 // throws once the run has failed
  void fail(const std::exception& e);       // a step failed on rank 0: the run ends

  DeepSeekModel& model_;
  DistContext* dist_ = nullptr;  // null for a runner over given groups (tests): no watchdog
  ControlChannel& channel_;
  LatentCache cache_;
  StepGroups groups_;
  int max_in_flight_ = 1;
  void* logits_stream_ = nullptr;    // cudaStream_t (pipelines only)
  void* sampling_stream_ = nullptr;  // cudaStream_t (pipelines only)
  std::deque<InFlight> in_flight_;
};

// Every rank but 0: runs the steps rank 0 sends until it sends stop.
void run_follower(DeepSeekModel& model, int32_t num_cache_blocks, DistContext& dist);
void run_follower(DeepSeekModel& model, int32_t num_cache_blocks, ControlChannel& channel, const StepGroups& groups);

}  // namespace mlaserve::dist
