// The MLA block of DeepSeekModel (MODEL_SPEC.md §3, §4): projections, RoPE, the latent cache
// write, and attention in the absorbed or the MHA form. See model.h for the plan.
//
// kv_a_proj_with_mqa [576, H] runs as one GEMM; latent_rows then splits its rows into the
// normalised latent and the rotated rope key (and writes the cache row) in one op.
#include <algorithm>
#include <limits>
#include <optional>

#include "model/step_metadata.h"
#include "ops/latent_cache.h"
#include "ops/latent_rows.h"
#include "ops/linear.h"
#include "ops/merge_attention_states.h"
#include "ops/mha_attention.h"
#include "ops/mla_absorb.h"
#include "ops/mla_absorbed_attention.h"
#include "ops/mla_decode.h"
#include "ops/mla_expand_kv.h"
#include "ops/rms_norm_fp8.h"
#include "ops/rope.h"

namespace mlaserve {

Tensor DeepSeekModel::attention(int64_t layer, const NormedActivation& a, const StepMetadata& step,
                                LatentCache& cache) {
  const MlaWeights& w = weights_.layers[static_cast<size_t>(layer)].attn;
  const int64_t t = a.x.dim(0), n = heads_, dn = config_.qk_nope_head_dim;
  const int64_t dc = config_.kv_lora_rank, dr = config_.qk_rope_head_dim, dv = config_.v_head_dim;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  const Stream stream = options_.stream;

  mark("attn.project");
  // The cache row [RMSNorm(latent) | RoPE(k_pe)] of every new token, on the side stream beside the
  // query projection (model.h, ModelOptions::side_stream). Its FP8 input (a.q) was written by the
  // norm on the model's stream before the fork.
  std::optional<ForkedBranch> kv_branch = fork_side_branch();
  const Stream kv_stream = kv_branch ? kv_branch->stream() : stream;
  const bool latent_layout = options_.kv_cache_layout == KvCacheLayout::kLatent;
  const Tensor ckv = linear(w.kv_a_proj, a, kv_stream);  // [T, dc + dr]
  ops::LatentRowOutputs rows{act({t, dc}), act({t, dr}), latent_layout ? step.slots : Tensor(),
                             latent_layout ? cache.layer(layer) : Tensor()};
  ops::latent_rows({ckv, w.kv_a_norm, eps, step.positions, cos_sin_}, rows, kv_stream);
  const Tensor& latent = rows.latent;  // [T, dc] RMSNorm(c)
  const Tensor& k_pe = rows.k_pe;      // [T, dr] RoPE(k_pe)

  // Query: [T, n, dn + dr], rope on each head's last dr channels. Its first projection runs while
  // kv_a_proj holds part of the GPU on the side stream.
  const ops::GridPlacement beside_kv = kv_branch ? ops::GridPlacement::kBeside : ops::GridPlacement::kAlone;
  Tensor q;
  if (w.q_proj) {
    q = linear(*w.q_proj, a, {}, beside_kv);
  } else {
    NormedActivation cq{linear(*w.q_a_proj, a, {}, beside_kv),
                        fp8_input(t, w.q_b_proj->in_features(), w.q_b_proj->is_fp8())};
    ops::rms_norm_fp8(cq.x, w.q_a_norm, eps, cq.x, act_quant_, cq.q, stream);  // [T, dq] in place
    q = linear(*w.q_b_proj, cq);
  }
  q = q.reshape({t, n, dn + dr});
  Tensor o = latent_layout ? act({t, n, dv}) : Tensor();  // head-major per token, the o_proj input
  // The fused op over the whole step applies the query's RoPE itself: then no RoPE kernel.
  const std::optional<ops::MlaAbsorbedArgs> whole_step =
      latent_layout ? fused_attention_of_step(w, step, q, cache.layer(layer), o) : std::nullopt;
  if (!whole_step) ops::apply_rope_interleaved(q, step.positions, cos_sin_, dn, stream);
  if (kv_branch) kv_branch->join();
  if (!latent_layout) {
    return attention_mha_cache(w, step, q, latent, k_pe, cache.layer(layer));  // mha_cache_block.cc
  }

  // An FP8 o_proj's input codes [T, n·dv] (one group a head: dv = 128), where the step has
  // MHA-form rows (a prefill): the ops that write those rows of o write their codes too
  // (AttentionFp8Output), and the absorbed rows take a quantiser pass of their own. In steps of
  // absorbed rows only, o_proj quantises o itself (inside its GEMV at decode sizes).
  const auto& seqs = step.batch->sequences;
  const bool head_groups = dv == ops::kFp8BlockSize;  // (every released model's)
  const ops::AttentionFp8Output o_q{
      fp8_input(t, n * dv, step.has_mha_rows() && head_groups && w.o_proj.is_fp8(), /*group_major=*/false),
      act_quant_};
  if (whole_step) {
    mark("attn.absorbed.fused");
    ops::mla_absorbed_attention(*whole_step, o, stream);
  } else {
    for (const AbsorbedRun& run : step.absorbed_runs) {
      Tensor o_run = o.slice(run.row_begin, run.row_end);
      attend_absorbed(w, run, q.slice(run.row_begin, run.row_end), cache.layer(layer), o_run);
      if (o_q.defined()) ops::quantize_attention_output(o_run, o_q.rows(run.row_begin, run.row_end), stream);
    }
  }
  mark("attn.mha");
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (step.absorbed[i]) continue;
    const int64_t b = seqs[i].query_start, e = b + seqs[i].query_len;
    Tensor o_seq = o.slice(b, e);
    attend_mha(w, seqs[i], step.mha_block_tables[i], q.slice(b, e), latent.slice(b, e), k_pe.slice(b, e),
               cache.layer(layer), o_seq, o_q.rows(b, e));
  }
  mark("attn.o_proj");
  Tensor out = partial({t, w.o_proj.out_features()});  // [T, H]
  // Through the fused attention (HBM mostly idle) o_proj's GEMV CTAs wait on the SMs it leaves.
  const ops::L2Prefetches prefetch = whole_step ? weights_after_attention(layer) : ops::L2Prefetches{};
  linear_into(w.o_proj, NormedActivation{o.reshape({t, n * dv}), o_q.q}, out, {}, ops::GridPlacement::kAlone,
              prefetch);
  return out;
}

ops::L2Prefetches DeepSeekModel::weights_after_attention(int64_t layer) const {
  const auto bytes_of = [](const Linear& w) { return ops::L2Prefetch{w.weight.raw(), w.weight.nbytes()}; };
  ops::L2Prefetches regions{};
  const LayerWeights& lw = weights_.layers[static_cast<size_t>(layer)];
  if (lw.moe && lw.moe->shared) regions[0] = bytes_of(lw.moe->shared->down);
  if (static_cast<size_t>(layer) + 1 < weights_.layers.size()) {
    const MlaWeights& next = weights_.layers[static_cast<size_t>(layer) + 1].attn;
    regions[1] = bytes_of(next.q_proj ? *next.q_proj : *next.q_a_proj);
  }
  return regions;
}

bool DeepSeekModel::fused_attention_for(int64_t max_seq_len, int64_t num_seqs) const {
  return options_.fused_absorbed_attention && max_seq_len <= ops::mla_absorbed_max_seq_len(num_seqs) &&
         num_seqs <= ops::mla_absorbed_attention_max_seqs(heads_, options_.device);
}

int64_t DeepSeekModel::decode_seq_len_class(int64_t max_seq_len, int64_t num_seqs) const {
  if (fused_attention_for(max_seq_len, num_seqs)) return ops::mla_absorbed_max_seq_len(num_seqs);
  if (max_seq_len <= ops::kMlaDecodeShortSeqLen && ops::mla_decode_kernel_depends_on_length(num_seqs, heads_)) {
    return ops::kMlaDecodeShortSeqLen;
  }
  return std::numeric_limits<int64_t>::max();
}

ops::MlaAbsorbedArgs DeepSeekModel::fused_attention_args(const MlaWeights& w, const AbsorbedRun& run, const Tensor& q,
                                                        const Tensor& cache_layer, const Tensor& rope_positions) const {
  // early_loads as below, the kernel just before being the RoPE (or the query projection).
  ops::MlaAbsorbedArgs args{q, w.kv_b_dense, cache_layer, run.block_table, run.seq_lens, run.query_start,
                            static_cast<float>(config_.softmax_scale), /*early_loads=*/true};
  if (rope_positions.defined()) {
    args.positions = rope_positions;
    args.cos_sin = cos_sin_;
  }
  return args;
}

std::optional<ops::MlaAbsorbedArgs> DeepSeekModel::fused_attention_of_step(const MlaWeights& w,
                                                                           const StepMetadata& step, const Tensor& q,
                                                                           const Tensor& cache_layer,
                                                                           const Tensor& o) const {
  if (step.absorbed_runs.size() != 1 || step.has_mha_rows()) return std::nullopt;
  const AbsorbedRun& run = step.absorbed_runs[0];
  if (run.row_begin != 0 || run.row_end != q.dim(0) || !fused_attention_for(run.max_seq_len, run.seq_lens.dim(0))) {
    return std::nullopt;
  }
  ops::MlaAbsorbedArgs args = fused_attention_args(w, run, q, cache_layer, step.positions);
  if (!ops::mla_absorbed_attention_fits(args, o)) return std::nullopt;
  return args;
}

void DeepSeekModel::attend_absorbed(const MlaWeights& w, const AbsorbedRun& run, const Tensor& q,
                                    const Tensor& cache_layer, Tensor& o) {
  const int64_t rows = q.dim(0), n = heads_, dc = config_.kv_lora_rank;
  const Stream stream = options_.stream;
  if (fused_attention_for(run.max_seq_len, run.seq_lens.dim(0))) {
    // One kernel when the run also fits it (one query token a sequence).
    const ops::MlaAbsorbedArgs fused = fused_attention_args(w, run, q, cache_layer, Tensor());
    if (ops::mla_absorbed_attention_fits(fused, o)) {
      mark("attn.absorbed.fused");
      ops::mla_absorbed_attention(fused, o, stream);
      return;
    }
  }
  mark("attn.absorbed.absorb");
  Tensor q_abs = act({rows, n, dc + config_.qk_rope_head_dim});  // [rows, n, 576]
  ops::mla_absorb_query(q, w.kv_b_dense, q_abs, stream);
  // early_loads: the kernel just before is the absorption (q_abs); the cache rows (latent_rows,
  // joined before it), the tables and the schedule (prepare_step) come from earlier kernels.
  ops::MlaDecodeArgs args{q_abs, cache_layer, run.block_table, run.seq_lens, run.query_start,
                          static_cast<float>(config_.softmax_scale), /*early_loads=*/true};
  mark("attn.absorbed.decode");
  ops::MlaDecodeOutputs lat{act({rows, n, dc}), f32({rows, n})};
  ops::mla_decode(args, lat, run.plan.get(), stream);  // o_lat [rows, n, 512]
  mark("attn.absorbed.up");
  ops::mla_up_project_output(lat.out, w.kv_b_dense, o, stream);  // [rows, n, dv]
}

void DeepSeekModel::attend_mha(const MlaWeights& w, const SequenceSlice& seq, const Tensor& block_table,
                               const Tensor& q, const Tensor& latent, const Tensor& k_pe, const Tensor& cache_layer,
                               Tensor& o, const ops::AttentionFp8Output& o_q) {
  const int64_t len = seq.query_len, ctx = seq.context_len;
  const int64_t n = heads_, dc = config_.kv_lora_rank, dr = config_.qk_rope_head_dim;
  const int64_t dn = config_.qk_nope_head_dim, dv = config_.v_head_dim;
  const float scale = static_cast<float>(config_.softmax_scale);
  const Stream stream = options_.stream;

  // Per-head K [S, n, dn + dr] and V [S, n, dv] of S latent rows, up-projected through kv_b_proj.
  auto expand = [&](const Tensor& lat, const Tensor& pe, Tensor& k, Tensor& v) {
    const int64_t s = lat.dim(0);
    Tensor kv = act({s, n * (dn + dv)});
    ops::linear(lat, w.kv_b_dense, kv, stream);
    k = act({s, n, dn + dr});
    v = act({s, n, dv});
    ops::mla_expand_kv(kv.reshape({s, n, dn + dv}), pe, k, v, stream);
  };
  // The new tokens attend to themselves causally ...
  Tensor k, v;
  expand(latent, k_pe, k, v);
  ops::AttentionState state{o, f32({len, n})};
  ops::mha_attention(q, k, v, ops::MhaParams{scale, /*causal=*/true}, state, stream,
                     ctx == 0 ? o_q : ops::AttentionFp8Output{});
  if (ctx == 0) return;

  // ... and to the cached context, gathered and up-projected chunk by chunk, merged by LSE.
  Tensor ctx_latent = act({ctx, dc});
  Tensor ctx_pe = act({ctx, dr});
  ops::gather_latent_cache(cache_layer, block_table, ctx_latent, ctx_pe, stream);
  for (int64_t c0 = 0; c0 < ctx; c0 += options_.context_chunk_tokens) {
    const int64_t c1 = std::min(ctx, c0 + options_.context_chunk_tokens);
    Tensor ck, cv;
    expand(ctx_latent.slice(c0, c1), ctx_pe.slice(c0, c1), ck, cv);
    ops::AttentionState part{act({len, n, dv}), f32({len, n})};
    ops::mha_attention(q, ck, cv, ops::MhaParams{scale, /*causal=*/false}, part, stream);
    ops::merge_attention_states(state, part, state, stream, c1 == ctx ? o_q : ops::AttentionFp8Output{});
  }
}

}  // namespace mlaserve
