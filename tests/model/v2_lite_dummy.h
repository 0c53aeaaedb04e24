// DeepSeek-V2-Lite's shapes with dummy BF16 weights on the GPU, cut to a few layers: for the tests
// that need its 16 heads (the fused absorbed attention, ops/mla_absorbed_attention.h; no tiny
// reference model has more than 4).
#pragma once

#include <cstdint>

#include "model/dummy.h"
#include "model/model.h"
#include "model/presets.h"

namespace mlaserve::testing {

// heads: V2-Lite's 16, or another count with the same head dimensions (the per-rank heads of V2 or
// V3 under tensor parallelism, 32 or 64).
inline DeepSeekModel v2_lite_gpu_model(int64_t layers, uint64_t seed, ModelOptions options = {}, int64_t heads = 16) {
  DeepSeekConfig config = preset_config("deepseek-v2-lite");
  config.num_hidden_layers = layers;
  config.num_attention_heads = heads;
  finalize_config(config);
  DummyOptions dummy;
  dummy.seed = seed;
  dummy.weight_dtype = DType::kBF16;
  dummy.device = Device::kCUDA;
  options.device = Device::kCUDA;
  return DeepSeekModel(config, make_dummy_weights(config, dummy), options);
}

}  // namespace mlaserve::testing
