// Typed model weights: one struct per block of the DeepSeek graph (MODEL_SPEC.md §9), filled
// by the checkpoint loader (loader.h) or with random values at real shapes (dummy.h).
//
// Every linear layer is a `Linear`: weight [out, in] in BF16/F32, or F8_E4M3 with its block
// scale (weight_scale_inv, f32 [ceil(out/128), ceil(in/128)], a multiplier). The absorbed MLA
// form reads W_UK / W_UV straight out of kv_b_proj's per-head layout (ops/mla_absorb.h), so an
// FP8 kv_b_proj is dequantised once at load into kv_b_dense (MODEL_SPEC §6.4).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/tensor.h"

namespace mlaserve {

struct Linear {
  Tensor weight;     // [out, in]
  Tensor scale_inv;  // [ceil(out/128), ceil(in/128)] f32, only for F8_E4M3 weights

  bool is_fp8() const { return weight.dtype() == DType::kF8E4M3; }
  int64_t out_features() const { return weight.dim(0); }
  int64_t in_features() const { return weight.dim(1); }
};

struct MlaWeights {
  // Query path: either q_proj (no q_lora_rank, V2-Lite) or q_a_proj -> q_a_layernorm -> q_b_proj.
  std::optional<Linear> q_proj;    // [n * 192, H]
  std::optional<Linear> q_a_proj;  // [dq, H]
  Tensor q_a_norm;                 // [dq]
  std::optional<Linear> q_b_proj;  // [n * 192, dq]
  Linear kv_a_proj;                // [576, H]: latent (512) then the shared rope key (64)
  Tensor kv_a_norm;                // [512]
  Linear kv_b_proj;                // [n * 256, 512]: per head [K_h (128) | V_h (128)] rows
  Linear o_proj;                   // [H, n * 128]
  // kv_b_proj as a dense f32/bf16 matrix (dequantised when FP8), for the absorbed form's
  // per-head W_UK / W_UV products and the MHA form's up-projection.
  Tensor kv_b_dense;               // [n * 256, 512]
};

struct MlpWeights {  // SwiGLU: down(silu(gate(x)) * up(x))
  Linear gate;  // [I, H]
  Linear up;    // [I, H]
  Linear down;  // [H, I]
};

struct MoeWeights {
  Tensor router;                    // [E, H] (bf16 in checkpoints; used in fp32)
  Tensor correction_bias;           // [E] f32 (V3 noaux_tc only; undefined otherwise)
  std::vector<MlpWeights> experts;  // E experts of width Im
  std::optional<MlpWeights> shared; // one MLP of width n_shared_experts * Im
};

struct LayerWeights {
  Tensor input_norm;      // [H]
  Tensor post_attn_norm;  // [H]
  MlaWeights attn;
  std::optional<MlpWeights> mlp;  // dense layers
  std::optional<MoeWeights> moe;  // MoE layers
};

struct ModelWeights {
  Tensor embed;    // [V, H]
  std::vector<LayerWeights> layers;
  Tensor final_norm;  // [H]
  Tensor lm_head;     // [V, H]
};

}  // namespace mlaserve
