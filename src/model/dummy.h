// The "dummy" load format: random weights at the real shapes of a config (a preset such as
// deepseek-v2-lite, or any config.json), for benchmarks and demos without a checkpoint.
//
// Values are uniform (ops/random_fill.h: counter-based, the same on the host and the GPU) with
// the variance of a 1/sqrt(fan_in) initialisation, so activations stay
// O(1) through any depth and the model produces varied, non-degenerate tokens. Norm weights are
// near 1, the V3 correction bias near 0 (so that tokens spread over the experts as a
// load-balanced checkpoint's do). A config with quantization_config (V3/R1)
// gets FP8 E4M3 linears with 128x128 block scales, like its real checkpoint; kv_b_dense is
// derived as the loader does. Deterministic for a given seed.
//
// With device = GPU, BF16 weights are filled in place on the GPU (a 16B-parameter model in
// seconds); FP8 weights are filled the same way in BF16, then quantised on the GPU
// (model/quantize_fp8.h; on the host only for the CPU backend). Host-side generation is bounded:
// the call refuses (naming the size) host weights beyond options.max_host_bytes.
#pragma once

#include <cstdint>
#include <optional>

#include "model/config.h"
#include "model/shard_plan.h"
#include "model/weights.h"

namespace mlaserve {

struct DummyOptions {
  uint64_t seed = 0;
  DType weight_dtype = DType::kF32;      // non-FP8 weights (f32 or bf16)
  bool fp8 = false;                      // FP8 linears even without quantization_config
  uint64_t max_host_bytes = 8ull << 30;  // refuse larger host dummies
  Device device = Device::kCPU;          // where the weights end up
  // Keep only this rank's share (model/shard_plan.h): every tensor is still drawn in the same
  // order, so a share equals the same cut of the whole model's dummy weights. Unset: all.
  std::optional<ShardPlan> shard;
};

// Parameter bytes the weights of `config` take on the host with `options`.
uint64_t dummy_weight_bytes(const DeepSeekConfig& config, const DummyOptions& options);

ModelWeights make_dummy_weights(const DeepSeekConfig& config, const DummyOptions& options);

}  // namespace mlaserve
