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
// (ModelRunner::submit/wait; LaunchOptions::steps_in_flight): submit() sends the plan and queues
// stage 0's share on rank 0's stream, and returns without waiting. While stage 1 runs step n,
// stage 0 already runs step n + 1, which the engine scheduled from other sequences. wait()
// waits on the host for the oldest step's logits (an event recorded after their receive), so the
// engine's sampler reads them in order, on a stream of its own with nothing queued before it
// (sampling_stream()).
//
// Where the logits travel. An NCCL receive is a kernel that holds its SMs until the data comes;
// posted beside stage 0's work (on a second stream, as this runner once did) it cost stage 0 a
// quarter of its speed (PP2 on H200s: 22.7 against 17.1 ms of GPU a step with the logits not
// sent at all; bench/NOTES-dist.md). So rank 0 queues the receive on its model stream, between
// two shares of work: behind the hand-off of the step that fills every slot but one (step
// n + k - 1 for step n's logits, k steps in flight; by then the last stage is about to finish
// step n, so stage 0 hardly waits), or in wait() for a step that no such step followed. The last
// stage's tensor-parallel rank 0 sends each step's logits from a stream of its own once its
// share has computed them (run_follower), so that its model stream goes on to the next step's
// input instead of waiting for rank 0's receive; that send waits beside the model stream until
// rank 0 gets to the receive, then moves the logits. In a two-stage pipeline without tensor
// parallelism (the layout measured with it) within one machine the logits go instead by the copy
// engine into a ring of slots on rank 0's GPU (dist/logits_ring.h; offer_ring at start-up), and
// "the receive" is a wait for the slot's flag; NCCL stays across machines, for the other layouts
// and for steps with more rows than a slot. (Measured, bench/NOTES-dist.md: 92 MB of logits take
// 0.24 ms by the copy engine against 1.3 ms by NCCL beside the model's kernels; the ring lifted the
// decode-heavy workload from 1.59x to 1.69x of one GPU.)
//
// Why this cannot deadlock. The tensor-parallel groups (all-reduces) and the pipeline groups
// (residual hand-offs from stage s to s + 1) are used on every rank's model stream, the world
// communicator (the logits) on rank 0's model stream and the sender's logits stream, each queued
// step by step in submission order. An operation waits only for those queued before it on its
// stream and for its peers' matching operation. The logits of step n are sent once the last
// stage has run n, which needs only the hand-offs of steps <= n, and the send itself holds up no
// operation of the last stage's model stream (its model stream waits for a send only with the
// next send, when rank 0 has long received it: it received step n's logits behind hand-offs of
// steps the last stage has received by then). Rank 0 queues the receive after everything of
// steps <= n and stage 0's share of a later step, none of which needs a later operation of the
// last stage; so every matching pair is reached on both sides and the waits have no cycle. Rank
// 0's host, in wait(), waits for the logits of the oldest step, whose operations are all queued.
//
// Failures (over a DistContext): rank 0's watchdog is armed while the runner lives, a
// follower's while it runs a step (dist/watchdog.h). A step that throws on rank 0 or on a
// follower ends the run on every rank (DistContext::fail); from then on every step on rank 0
// fails at once with the reason, and the engine fails the requests in it.
#pragma once

#include <deque>
#include <memory>

#include "dist/context.h"
#include "dist/logits_ring.h"
#include "dist/step_runner.h"
#include "engine/model_runner.h"
#include "kv/latent_cache.h"
#include "model/model.h"

namespace mlaserve {
class DecodeGraphs;
}

namespace mlaserve::dist {

class DistributedRunner final : public ModelRunner {
 public:
  // `model` and `dist` must outlive the runner; rank 0 only. max_logit_rows: the most rows a step
  // samples (the scheduler's sequence cap), the size of the logits ring's slots. cuda_graphs:
  // decode steps of up to max_logit_rows sequences replay CUDA graphs on every rank, in the
  // layouts stage_graphs allows (engine/decode_graphs.h; the followers must be given the same
  // max_graph_batch).
  DistributedRunner(DeepSeekModel& model, int32_t num_cache_blocks, DistContext& dist, int64_t max_logit_rows,
                    bool cuda_graphs);
  // The same over given groups (a test's layout split from its world): steps_in_flight 0 is one
  // per stage, max_graph_batch 0 no graphs; `channel` must outlive the runner.
  DistributedRunner(DeepSeekModel& model, int32_t num_cache_blocks, ControlChannel& channel, const StepGroups& groups,
                    int steps_in_flight, int64_t max_logit_rows, int64_t max_graph_batch = 0);
  ~DistributedRunner() override;  // waits for the steps in flight, then the other ranks stop

  ModelRunnerInfo info() const override;
  Tensor execute(const ForwardBatch& batch) override;
  int max_in_flight() const override { return max_in_flight_; }
  // With steps in flight, a stream of its own: sampling step N must not queue behind stage 0's
  // later steps on the model's stream (the host has waited for step N's logits before it samples
  // them).
  Stream sampling_stream() const override { return Stream{sampling_stream_}; }
  void submit(const ForwardBatch& batch) override;
  Tensor wait() override;
  DecodeGraphs* graphs() const;  // this rank's decode graphs (stage_graphs' layouts), or null

 private:
  struct InFlight {
    int64_t step = 0;         // its number, from 0 (the logits ring's slot)
    int64_t rows = 0;         // the step's logit rows
    bool received = false;    // the receive of its logits is queued
    Tensor logits;            // [R, V] f32 on rank 0's device, once received
    void* arrived = nullptr;  // cudaEvent_t recorded on the model's stream after the receive (GPU)
  };

  void queue_step(const ForwardBatch& batch);
  void receive_logits(InFlight& f);  // queues f's receive on the model's stream
  void offer_ring(int64_t max_logit_rows);  // the logits ring, when the last stage can map it
  void check_alive() const;                 // throws once the run has failed
  void fail(const std::exception& e);       // a step failed on rank 0: the run ends

  DeepSeekModel& model_;
  DistContext* dist_ = nullptr;  // null for a runner over given groups (tests): no watchdog
  ControlChannel& channel_;
  LatentCache cache_;
  StepGroups groups_;
  int max_in_flight_ = 1;
  void* sampling_stream_ = nullptr;  // cudaStream_t (pipelines on the GPU)
  std::deque<InFlight> in_flight_;
  int64_t steps_ = 0;                 // steps submitted
  std::shared_ptr<LogitsRing> ring_;  // null: the logits come by NCCL (shared with the fail hook)
#ifdef MLASERVE_WITH_CUDA
  std::unique_ptr<DecodeGraphs> graphs_;  // this rank's decode graphs, or null (after cache_)
#endif
};

// Every rank but 0: runs the steps rank 0 sends until it sends stop. max_graph_batch: rank 0's
// (its max_logit_rows when it has CUDA graphs, else 0).
void run_follower(DeepSeekModel& model, int32_t num_cache_blocks, DistContext& dist, int64_t max_graph_batch);
void run_follower(DeepSeekModel& model, int32_t num_cache_blocks, ControlChannel& channel, const StepGroups& groups,
                  int64_t max_graph_batch = 0);

}  // namespace mlaserve::dist
