// What the whole-model benchmarks (decode_step_bench, prefill_step_bench) share: a preset's config
// cut to its first layers, and dummy weights on the GPU in BF16 or quantised to block FP8 there.
#pragma once

#include <cstdint>
#include <string>

#include "core/error.h"
#include "model/dummy.h"
#include "model/presets.h"

namespace mlaserve::bench {

// The preset's config with its first num_layers layers (0: all of them; the dense ones come first,
// as in the model).
inline DeepSeekConfig preset_cut(const std::string& preset, int64_t num_layers) {
  DeepSeekConfig config = preset_config(preset);
  MLA_CHECK(num_layers >= 0 && num_layers <= config.num_hidden_layers, "--num-layers must be 1 .. {}, got {}",
            config.num_hidden_layers, num_layers);
  if (num_layers > 0) config.num_hidden_layers = num_layers;
  return config;
}

// Dummy weights filled on the GPU in BF16 and, with fp8, quantised to block FP8 there (W8A8 GEMMs).
// An FP8 preset needs fp8.
inline DummyOptions gpu_dummy_options(const DeepSeekConfig& config, const std::string& preset, bool fp8) {
  MLA_CHECK(fp8 || !config.fp8, "{} is an FP8 model: run it with --quantization fp8", preset);
  DummyOptions dummy;
  dummy.weight_dtype = DType::kBF16;
  dummy.device = Device::kCUDA;
  dummy.fp8 = fp8;
  return dummy;
}

}  // namespace mlaserve::bench
