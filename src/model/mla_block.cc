// The MLA block of DeepSeekModel (MODEL_SPEC.md §3, §4): projections, RoPE, the latent cache
// write, and attention in the absorbed or the MHA form per sequence. See model.h for the plan.
#include <algorithm>
#include <cstring>

#include "model/model.h"
#include "ops/latent_cache.h"
#include "ops/linear.h"
#include "ops/merge_attention_states.h"
#include "ops/mha_attention.h"
#include "ops/mla_absorb.h"
#include "ops/mla_decode.h"
#include "ops/mla_expand_kv.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"

namespace mlaserve {
namespace {

// Columns [begin, begin + width) of a [T, D] f32 tensor, copied.
Tensor columns(const Tensor& t, int64_t begin, int64_t width) {
  const int64_t n = t.dim(0), d = t.dim(1);
  Tensor out = Tensor::empty({n, width}, DType::kF32);
  const float* src = t.data<float>();
  float* dst = out.data<float>();
  for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * width, src + i * d + begin, width * sizeof(float));
  return out;
}

Tensor i32_tensor(const std::vector<int32_t>& values) {
  Tensor t = Tensor::empty({static_cast<int64_t>(values.size())}, DType::kI32);
  std::copy(values.begin(), values.end(), t.data<int32_t>());
  return t;
}

}  // namespace

Tensor DeepSeekModel::attention(int64_t layer, const Tensor& a, const ForwardBatch& batch, const Tensor& positions,
                                LatentCache& cache) {
  const MlaWeights& w = weights_.layers[static_cast<size_t>(layer)].attn;
  const int64_t t = a.dim(0), n = config_.num_attention_heads, dn = config_.qk_nope_head_dim;
  const int64_t dc = config_.kv_lora_rank, dr = config_.qk_rope_head_dim, dv = config_.v_head_dim;
  const float eps = static_cast<float>(config_.rms_norm_eps);

  // Query: [T, n, dn + dr], rope on each head's last dr channels.
  Tensor q;
  if (w.q_proj) {
    q = linear(*w.q_proj, a);
  } else {
    Tensor cq = linear(*w.q_a_proj, a);  // [T, dq]
    ops::rms_norm_cpu(cq, w.q_a_norm, eps, cq);
    q = linear(*w.q_b_proj, cq);
  }
  q = q.reshape({t, n, dn + dr});
  ops::apply_rope_interleaved_cpu(q, positions, cos_sin_, dn);

  // Latent and rope key: ckv [T, dc + dr] -> latent [T, dc] (normed), k_pe [T, dr] (rotated).
  Tensor ckv = linear(w.kv_a_proj, a);
  Tensor latent = columns(ckv, 0, dc);
  ops::rms_norm_cpu(latent, w.kv_a_norm, eps, latent);
  Tensor k_pe = columns(ckv, dc, dr);
  ops::apply_rope_interleaved_cpu(k_pe, positions, cos_sin_, 0);

  Tensor slots = Tensor::empty({t}, DType::kI64);
  std::copy(batch.slot_mapping.begin(), batch.slot_mapping.end(), slots.data<int64_t>());
  ops::write_latent_cache_cpu(latent, k_pe, slots, cache.layer(layer));

  Tensor o = Tensor::empty({t, n * dv}, DType::kF32);  // [T, n * dv], head-major
  for (const SequenceSlice& seq : batch.sequences) {
    const int64_t b = seq.query_start, e = seq.query_start + seq.query_len;
    Tensor o_seq = attend_sequence(w, seq, q.slice(b, e), latent.slice(b, e), k_pe.slice(b, e),
                                   cache.layer(layer));  // [len, n, dv]
    std::memcpy(o.data<float>() + b * n * dv, o_seq.raw(), o_seq.nbytes());
  }
  return linear(w.o_proj, o);
}

Tensor DeepSeekModel::attend_sequence(const MlaWeights& w, const SequenceSlice& seq, const Tensor& q,
                                      const Tensor& latent, const Tensor& k_pe, const Tensor& cache_layer) {
  const int64_t len = seq.query_len, ctx = seq.context_len, total = ctx + len;
  const int64_t n = config_.num_attention_heads, dc = config_.kv_lora_rank, dr = config_.qk_rope_head_dim;
  const int64_t dn = config_.qk_nope_head_dim, dv = config_.v_head_dim;
  const int64_t blocks_needed = (total + kCacheBlockSize - 1) / kCacheBlockSize;
  MLA_CHECK(static_cast<int64_t>(seq.block_table.size()) >= blocks_needed,
            "sequence of {} tokens has {} cache blocks, needs {}", total, seq.block_table.size(), blocks_needed);
  const float scale = static_cast<float>(config_.softmax_scale);

  bool absorbed = options_.attention_form == AttentionForm::kAbsorbed ||
                  (options_.attention_form == AttentionForm::kAuto && len <= kMaxAbsorbedQueryLen);
  Tensor out = Tensor::empty({len, n, dv}, DType::kF32);
  if (absorbed) {
    Tensor q_abs = Tensor::empty({len, n, dc + dr}, DType::kF32);  // [len, n, 576]
    ops::mla_absorb_query_cpu(q, w.kv_b_dense, q_abs);
    Tensor table = i32_tensor(seq.block_table).reshape({1, -1});
    ops::MlaDecodeArgs args{q_abs, cache_layer, table, i32_tensor({static_cast<int32_t>(total)}),
                            i32_tensor({0, static_cast<int32_t>(len)}), scale};
    ops::MlaDecodeOutputs lat{Tensor::empty({len, n, dc}, DType::kF32), Tensor::empty({len, n}, DType::kF32)};
    ops::mla_decode_cpu(args, lat);  // o_lat [len, n, 512]
    ops::mla_up_project_output_cpu(lat.out, w.kv_b_dense, out);
    return out;
  }

  // MHA form: the new tokens attend to themselves causally ...
  auto expand = [&](const Tensor& lat, const Tensor& pe, Tensor& k, Tensor& v) {
    const int64_t s = lat.dim(0);
    Tensor kv = Tensor::empty({s, n * (dn + dv)}, DType::kF32);
    ops::linear_cpu(lat, w.kv_b_dense, kv);
    k = Tensor::empty({s, n, dn + dr}, DType::kF32);
    v = Tensor::empty({s, n, dv}, DType::kF32);
    ops::mla_expand_kv_cpu(kv.reshape({s, n, dn + dv}), pe, k, v);
  };
  Tensor k, v;
  expand(latent, k_pe, k, v);
  ops::AttentionState state{out, Tensor::empty({len, n}, DType::kF32)};
  ops::mha_attention_cpu(q, k, v, ops::MhaParams{scale, /*causal=*/true}, state);
  if (ctx == 0) return out;

  // ... and to the cached context, gathered and up-projected chunk by chunk, merged by LSE.
  Tensor ctx_latent = Tensor::empty({ctx, dc}, DType::kF32);
  Tensor ctx_pe = Tensor::empty({ctx, dr}, DType::kF32);
  ops::gather_latent_cache_cpu(cache_layer, i32_tensor(seq.block_table), ctx_latent, ctx_pe);
  for (int64_t c0 = 0; c0 < ctx; c0 += options_.context_chunk_tokens) {
    const int64_t c1 = std::min(ctx, c0 + options_.context_chunk_tokens);
    Tensor ck, cv;
    expand(ctx_latent.slice(c0, c1), ctx_pe.slice(c0, c1), ck, cv);
    ops::AttentionState part{Tensor::empty({len, n, dv}, DType::kF32), Tensor::empty({len, n}, DType::kF32)};
    ops::mha_attention_cpu(q, ck, cv, ops::MhaParams{scale, /*causal=*/false}, part);
    ops::merge_attention_states_cpu(state, part, state);
  }
  return out;
}

}  // namespace mlaserve
