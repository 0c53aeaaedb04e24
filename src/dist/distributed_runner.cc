#include "dist/distributed_runner.h"

#include "core/logging.h"
#include "dist/step_message.h"
#include "engine/deepseek_runner.h"

namespace mlaserve::dist {
namespace {

StepGroups groups_of(DistContext& dist) {
  return StepGroups{dist.parallel(), dist.world(), dist.options().micro_batches};
}

}  // namespace

DistributedRunner::DistributedRunner(DeepSeekModel& model, int32_t num_cache_blocks, DistContext& dist)
    : model_(model), dist_(dist), cache_(model.make_cache(num_cache_blocks)) {
  MLA_CHECK(dist.is_leader(), "DistributedRunner runs on rank 0; the other ranks run run_follower");
}

DistributedRunner::~DistributedRunner() {
  try {
    dist_.channel().broadcast(encode_stop());
  } catch (const std::exception& e) {
    MLA_LOG_ERROR("could not stop the other ranks: {}", e.what());
  }
}

ModelRunnerInfo DistributedRunner::info() const {
  return model_runner_info(model_, static_cast<int32_t>(cache_.num_blocks()));
}

Tensor DistributedRunner::execute(const ForwardBatch& batch) {
  dist_.channel().broadcast(encode_step(batch));
  return run_step(model_, cache_, batch, groups_of(dist_));  // on the GPU, queued on the legacy stream
}

void run_follower(DeepSeekModel& model, int32_t num_cache_blocks, DistContext& dist) {
  MLA_CHECK(!dist.is_leader(), "rank 0 runs the engine, not a follower loop");
  LatentCache cache = model.make_cache(num_cache_blocks);
  const StepGroups groups = groups_of(dist);
  int64_t steps = 0;
  while (std::optional<ForwardBatch> batch = decode_step(dist.channel().receive())) {
    run_step(model, cache, *batch, groups);
    ++steps;
  }
  MLA_LOG_INFO("rank {}: stopped after {} steps", dist.parallel().rank, steps);
}

}  // namespace mlaserve::dist
