// DeepSeek-V2-Lite's shapes with dummy BF16 weights on the GPU, cut to a few layers: for the tests
// that need its 16 heads (the fused absorbed attention, ops/mla_absorbed_attention.h; no tiny
// reference model has more than 4).
#pragma once

#include <cstdint>

#include "model/dummy.h"
#include "model/model.h"
#include "model/presets.h"

namespace mlaserve::testing {

inline DeepSeekModel v2_lite_gpu_model(int64_t layers, uint64_t seed, ModelOptions options = {}) {
  DeepSeekConfig config = preset_config("deepseek-v2-lite");
  config.num_hidden_layers = layers;
  finalize_config(config);
  DummyOptions dummy;
  dummy.seed = seed;
  dummy.weight_dtype = DType::kBF16;
  dummy.device = Device::kCUDA;
  options.device = Device::kCUDA;
  return DeepSeekModel(config, make_dummy_weights(config, dummy), options);
}

}  // namespace mlaserve::testing
