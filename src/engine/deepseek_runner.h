// DeepSeekRunner: ModelRunner over a DeepSeekModel and its paged latent cache, on the model's
// device (CPU reference or GPU). Each step is one DeepSeekModel::forward; the logits stay on the
// model's device (the engine samples greedy rows there).
#pragma once

#include "engine/model_runner.h"
#include "kv/latent_cache.h"
#include "model/model.h"

namespace mlaserve {

class DeepSeekRunner final : public ModelRunner {
 public:
  // `model` must outlive the runner; the cache of num_cache_blocks blocks is allocated here.
  DeepSeekRunner(DeepSeekModel& model, int32_t num_cache_blocks);

  ModelRunnerInfo info() const override;
  Tensor execute(const ForwardBatch& batch) override;

 private:
  DeepSeekModel& model_;
  LatentCache cache_;
};

}  // namespace mlaserve
