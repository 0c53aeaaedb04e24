#include "engine/deepseek_runner.h"

#ifdef MLASERVE_WITH_CUDA
#include "engine/decode_graphs.h"
#endif

namespace mlaserve {
namespace {

#ifdef MLASERVE_WITH_CUDA
bool graphs_wanted(const DeepSeekModel& model, const RunnerOptions& options) {
  const ShardPlan& shard = model.shard();  // a whole model: split ones run under dist/distributed_runner.h
  return options.cuda_graphs && shard.pp_size == 1 && shard.tp_size == 1 && decode_graphs_supported(model);
}
#endif

}  // namespace

DeepSeekRunner::DeepSeekRunner(DeepSeekModel& model, int32_t num_cache_blocks, RunnerOptions options)
    : model_(model),
      cache_(model.make_cache(num_cache_blocks)) {
#ifdef MLASERVE_WITH_CUDA
  if (graphs_wanted(model, options)) {
    graphs_ = std::make_unique<DecodeGraphs>(model, cache_, options.max_graph_batch,
                                             decode_graph_max_context(model, num_cache_blocks));
  }
#else
  (void)options;  // no graphs without CUDA
#endif
}

DeepSeekRunner::~DeepSeekRunner() = default;

ModelRunnerInfo model_runner_info(const DeepSeekModel& model, int32_t num_cache_blocks) {
  const DeepSeekConfig& c = model.config();
  ModelRunnerInfo info;
  info.vocab_size = c.vocab_size;
  info.num_cache_blocks = num_cache_blocks;
  info.max_position_embeddings = c.max_position_embeddings;
  for (int64_t id : c.eos_token_ids) info.eos_token_ids.push_back(static_cast<int32_t>(id));
  return info;
}

ModelRunnerInfo DeepSeekRunner::info() const {
  return model_runner_info(model_, static_cast<int32_t>(cache_.num_blocks()));
}

Tensor DeepSeekRunner::execute(const ForwardBatch& batch) {
#ifdef MLASERVE_WITH_CUDA
  if (graphs_ && graphs_->accepts(batch)) return graphs_->run(batch);
#endif
  return model_.forward(batch, cache_);
}

}  // namespace mlaserve
