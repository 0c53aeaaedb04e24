#include "engine/deepseek_runner.h"

namespace mlaserve {

DeepSeekRunner::DeepSeekRunner(DeepSeekModel& model, int32_t num_cache_blocks)
    : model_(model), cache_(model.make_cache(num_cache_blocks)) {}

ModelRunnerInfo DeepSeekRunner::info() const {
  const DeepSeekConfig& c = model_.config();
  ModelRunnerInfo info;
  info.vocab_size = c.vocab_size;
  info.num_cache_blocks = static_cast<int32_t>(cache_.num_blocks());
  info.max_position_embeddings = c.max_position_embeddings;
  for (int64_t id : c.eos_token_ids) info.eos_token_ids.push_back(static_cast<int32_t>(id));
  return info;
}

Tensor DeepSeekRunner::execute(const ForwardBatch& batch) {
  return model_.forward(batch, cache_);
}

}  // namespace mlaserve
