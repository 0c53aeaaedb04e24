// Load-time block-FP8 quantisation of a model (`--quantization fp8`): every linear layer of the
// attention and feed-forward blocks and the stacked routed experts become e4m3 weights with one
// f32 scale per 128 x 128 block (ops/fp8_block.h), the format of DeepSeek-V3's FP8 checkpoints,
// so that the model runs the same W8A8 GEMMs as for such a checkpoint.
//
// Unchanged, as in the FP8 checkpoints: embeddings, lm_head, norms, the router and the
// correction bias. kv_b_proj too: the forward pass reads only kv_b_dense (the absorbed form's
// W_UK / W_UV and the MHA form's up-projection), which keeps the unquantised values. Linears that
// are already FP8 stay as they are. Runs where the weights are (the GPU: bf16 weights, one kernel
// per matrix, seconds for V2-Lite; the host: f32 or bf16, the CPU reference quantiser).
// Stacked experts [E, R, C] are quantised as one [E·R, C] matrix: R (2·Im or H) is a multiple of
// 128, so no block straddles two experts, and the scales reshape to [E, R/128, C/128].
#pragma once

#include "core/stream.h"
#include "model/weights.h"

namespace mlaserve {

void quantize_weights_fp8(ModelWeights& weights, Stream stream = {});
// One layer's part of it (a loader or dummy maker that quantises each layer as it is made, so that
// only one layer is ever held in bf16).
void quantize_layer_fp8(LayerWeights& layer, Stream stream = {});
// move_weights(weights, device) then quantize_weights_fp8(weights), layer by layer: each layer is
// moved and then quantised before the next one moves, so that the device holds one layer in bf16
// at a time (a bf16 checkpoint whose share fits the GPU only in FP8).
void move_and_quantize_fp8(ModelWeights& weights, Device device);

}  // namespace mlaserve
