// Typed model weights: one struct per block of the DeepSeek graph (MODEL_SPEC.md §9), filled
// by the checkpoint loader (loader.h) or with random values at real shapes (dummy.h).
//
// Every linear layer is a `Linear`: weight [out, in] in BF16/F32, or F8_E4M3 with its block
// scale (weight_scale_inv, f32 [ceil(out/128), ceil(in/128)], a multiplier). The absorbed MLA
// form reads W_UK / W_UV straight out of kv_b_proj's per-head layout (ops/mla_absorb.h), so an
// FP8 kv_b_proj is dequantised once at load into kv_b_dense (MODEL_SPEC §6.4).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "core/tensor.h"
#include "ops/moe_experts.h"

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

struct MlpWeights {  // SwiGLU: down(silu(gate(x)) * up(x)), gate and up fused into one GEMM
  Linear gate_up;  // [2I, H]: gate_proj rows [0, I), up_proj rows [I, 2I)
  Linear down;     // [H, I]
};

struct MoeWeights {
  Tensor router;                    // [E, H] (bf16 in checkpoints; run with fp32 accumulation)
  Tensor correction_bias;           // [E] f32 (V3 noaux_tc only; undefined otherwise)
  ops::ExpertWeights experts;       // E experts of width Im, stacked ([E, 2Im, H] and [E, H, Im])
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

// Rows [begin, end) of a linear layer: a view of the weight (and of its scale rows, for FP8,
// where begin and end must be multiples of 128 or end the matrix).
Linear linear_rows(const Linear& w, int64_t begin, int64_t end);

// [a; b]: the rows of b under those of a (for FP8, a's rows must fill whole 128-row blocks).
Linear concat_rows(const Linear& a, const Linear& b);

// Stacks same-shaped tensors into [n, ...].
Tensor stack(const std::vector<Tensor>& parts);

// Calls fn on every tensor of the model (to move weights to a device, to count bytes).
// Tensors that share storage (kv_b_dense and a BF16 kv_b_proj) are visited once each.
void for_each_tensor(ModelWeights& weights, const std::function<void(Tensor&)>& fn);

// The same over one layer's tensors.
void for_each_layer_tensor(LayerWeights& layer, const std::function<void(Tensor&)>& fn);

// Copies every weight to `device`; tensors that shared storage still do.
void move_weights(ModelWeights& weights, Device device);
void move_layer(LayerWeights& layer, Device device);

}  // namespace mlaserve
