// DeepSeekRunner: ModelRunner over a DeepSeekModel and its paged latent cache, on the model's
// device (CPU reference or GPU). Each step is one DeepSeekModel::forward, or on the GPU, for
// decode-only steps, the replay of a CUDA graph (decode_graphs.h); the logits stay on the
// model's device (the engine samples greedy rows there).
#pragma once

#include <memory>

#include "engine/model_runner.h"
#include "kv/latent_cache.h"
#include "model/model.h"

namespace mlaserve {

class DecodeGraphs;

// What a runner over `model` with a cache of num_cache_blocks blocks tells the engine (shared by
// DeepSeekRunner and dist::DistributedRunner).
ModelRunnerInfo model_runner_info(const DeepSeekModel& model, int32_t num_cache_blocks);

struct RunnerOptions {
  bool cuda_graphs = true;     // GPU: decode-only steps replay CUDA graphs
  int64_t max_graph_batch = 256;  // the largest decode batch that gets a graph
};

class DeepSeekRunner final : public ModelRunner {
 public:
  // `model` must outlive the runner; the cache of num_cache_blocks blocks is allocated here.
  DeepSeekRunner(DeepSeekModel& model, int32_t num_cache_blocks, RunnerOptions options = {});
  ~DeepSeekRunner() override;

  ModelRunnerInfo info() const override;
  Tensor execute(const ForwardBatch& batch) override;

 private:
  DeepSeekModel& model_;
  LatentCache cache_;
#ifdef MLASERVE_WITH_CUDA
  std::unique_ptr<DecodeGraphs> graphs_;  // GPU with graphs on
#endif
};

}  // namespace mlaserve
