// Checkpoint -> typed ModelWeights. Maps the official Hugging Face tensor names (MODEL_SPEC.md
// §9) to the fields of weights.h, checks every dtype and shape against the config, and reports
// missing or unexpected tensors by name (with the file that holds them).
//
// Skipped on purpose: MTP layers (index >= num_hidden_layers, §7), rotary_emb.inv_freq buffers
// of old exports. Refused with a clear message: checkpoints with transformers' fused in-memory
// expert tensors (experts.gate_up_proj), which the official checkpoints never contain.
//
// FP8 (§6): F8_E4M3 linears must come with weight_scale_inv of shape [ceil(out/128),
// ceil(in/128)]. kv_b_proj is always dequantised once into kv_b_dense for the absorbed form.
#pragma once

#include <optional>

#include "core/tensor.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/shard_plan.h"
#include "model/weights.h"

namespace mlaserve {

enum class Fp8Mode {
  kDequantize,  // FP8 weights become `weight_dtype` tensors (the REF "bf16" gemm_impl)
  kW8A8,        // FP8 weights stay E4M3 with their scales (block-FP8 GEMMs)
};

struct LoadOptions {
  DType weight_dtype = DType::kF32;  // dtype of non-FP8 weights after loading (f32 or bf16)
  Fp8Mode fp8_mode = Fp8Mode::kDequantize;
  // Load only this rank's share (model/shard_plan.h): the layers of its pipeline stage, each cut
  // to its tensor-parallel share right after it is read. Unset: the whole model.
  std::optional<ShardPlan> shard;
};

ModelWeights load_weights(const Checkpoint& checkpoint, const DeepSeekConfig& config,
                          const LoadOptions& options = {});

// Fills attn.kv_b_dense ([n * 256, 512] in `dtype`) from attn.kv_b_proj: dequantised if FP8,
// shared when it already has that dtype. Shared by the loader and the dummy weights.
void derive_kv_b_dense(MlaWeights& attn, DType dtype);

}  // namespace mlaserve
