// The engine over a model split across processes. Rank 0 alone runs the engine (scheduler,
// sampler, and later the HTTP server); DistributedRunner is its ModelRunner: each step it sends
// the ForwardBatch to every other rank (the step plan, dist/control_channel.h) and runs its own
// share of the step (dist/step_runner.h); the logits stay on rank 0's GPU for the engine's sampler. The other ranks run run_follower(): they wait for the
// next step plan, run their share, and return when rank 0 says stop (its runner's destructor).
// Every rank holds a cache of the same number of blocks for its own layers; the block ids in
// the batch index each rank's cache alike.
#pragma once

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
  ~DistributedRunner() override;  // the other ranks stop

  ModelRunnerInfo info() const override;
  Tensor execute(const ForwardBatch& batch) override;

 private:
  DeepSeekModel& model_;
  DistContext& dist_;
  LatentCache cache_;
};

// Every rank but 0: runs the steps rank 0 sends until it sends stop.
void run_follower(DeepSeekModel& model, int32_t num_cache_blocks, DistContext& dist);

}  // namespace mlaserve::dist
