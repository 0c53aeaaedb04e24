#include "model/quantize_fp8.h"

#include "core/device_cache.h"
#include "ops/fp8_block.h"

namespace mlaserve {
namespace {

// w [N, K] -> e4m3 [N, K] + scales [ceil(N/128), ceil(K/128)] on w's device.
void quantize_matrix(const Tensor& w, Tensor& w_q, Tensor& scale_inv, Stream stream) {
  w_q = Tensor::empty(w.shape(), DType::kF8E4M3, w.device());
  scale_inv = Tensor::empty({ops::fp8_num_blocks(w.dim(0)), ops::fp8_num_blocks(w.dim(1))}, DType::kF32, w.device());
  ops::quantize_weight_block_fp8(w, w_q, scale_inv, stream);
}

void quantize_linear(Linear& l, Stream stream) {
  if (l.is_fp8()) return;
  Linear q;
  quantize_matrix(l.weight, q.weight, q.scale_inv, stream);
  l = std::move(q);
}

void quantize_mlp(MlpWeights& m, Stream stream) {
  quantize_linear(m.gate_up, stream);
  quantize_linear(m.down, stream);
}

// [E, R, C] stacked -> e4m3 [E, R, C] + [E, R/128, C/128].
void quantize_stacked(Tensor& w, Tensor& scale, Stream stream) {
  const int64_t e = w.dim(0), r = w.dim(1), c = w.dim(2);
  MLA_CHECK(r % ops::kFp8BlockSize == 0, "quantize_weights_fp8: stacked expert weights of {} rows per expert do not "
            "fill whole 128-row blocks", r);
  Tensor q, s;
  quantize_matrix(w.reshape({e * r, c}), q, s, stream);
  w = q.reshape({e, r, c});
  scale = s.reshape({e, r / ops::kFp8BlockSize, ops::fp8_num_blocks(c)});
}

}  // namespace

void quantize_layer_fp8(LayerWeights& l, Stream stream) {
  MlaWeights& a = l.attn;
  // The quantised tensors are weights, held for the whole run: they get blocks of their own size.
  // The caching allocator hands a request any idle block up to twice its size, and a layer-by-layer
  // load leaves its bf16 temporaries idle just before this (V2's full-layer down [160, 5120, 1536],
  // 2.52 GB, is twice a TP2 rank's e4m3 gate_up): held as a weight, the rest of such a block is lost
  // for good (a V2 FP8 TP2 rank ran out of an H200's memory; bench/NOTES-dist.md).
  if (a.o_proj.weight.device() == Device::kCUDA) release_idle_device_memory();
  for (std::optional<Linear>* opt : {&a.q_proj, &a.q_a_proj, &a.q_b_proj}) {
    if (*opt) quantize_linear(**opt, stream);
  }
  quantize_linear(a.kv_a_proj, stream);
  quantize_linear(a.o_proj, stream);
  if (l.mlp) quantize_mlp(*l.mlp, stream);
  if (l.moe) {
    if (l.moe->shared) quantize_mlp(*l.moe->shared, stream);
    ops::ExpertWeights& x = l.moe->experts;
    if (!x.is_fp8()) {
      quantize_stacked(x.gate_up, x.gate_up_scale, stream);
      quantize_stacked(x.down, x.down_scale, stream);
    }
  }
}

void quantize_weights_fp8(ModelWeights& weights, Stream stream) {
  for (LayerWeights& l : weights.layers) quantize_layer_fp8(l, stream);
}

void move_and_quantize_fp8(ModelWeights& weights, Device device) {
  for (LayerWeights& l : weights.layers) {
    move_layer(l, device);
    quantize_layer_fp8(l);
  }
  move_weights(weights, device);  // the embedding, the final norm and lm_head (the layers are there)
}

}  // namespace mlaserve
