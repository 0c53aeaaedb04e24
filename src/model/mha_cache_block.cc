// Attention of DeepSeekModel over an MHA-layout cache (KvCacheLayout::kMha, issue #7): the
// comparison that motivated MLA, in the same engine. The projections, RoPE and o_proj are the
// latent path's (mla_block.cc); what differs is what is cached and what attention reads:
//
//   K/V of the new tokens  = mla_expand_kv(kv_b_proj(latent), k_pe)  [T, n, 192], [T, n, 128]
//   write_mha_cache        per head K and V at slot_mapping          (n · 320 values per token)
//   decode-form runs       paged_mha_decode over the cached K/V      (no up-projection, no absorption)
//   prefill-form sequences causal mha_attention over the new tokens, then the cached context
//                          gathered chunk by chunk (gather_mha_cache) and attended non-causally,
//                          merged by LSE
// "Decode form" is what the latent path calls absorbed (step.absorbed: short query chunks under
// AttentionForm::kAuto), so the two layouts split a batch the same way.
#include <algorithm>

#include "model/step_metadata.h"
#include "ops/linear.h"
#include "ops/merge_attention_states.h"
#include "ops/mha_attention.h"
#include "ops/mla_expand_kv.h"
#include "ops/paged_mha_cache.h"
#include "ops/paged_mha_decode.h"

namespace mlaserve {

Tensor DeepSeekModel::attention_mha_cache(const MlaWeights& w, const StepMetadata& step, const Tensor& q,
                                          const Tensor& latent, const Tensor& k_pe, Tensor& cache_layer) {
  const int64_t t = q.dim(0), n = heads_, dn = config_.qk_nope_head_dim;
  const int64_t dr = config_.qk_rope_head_dim, dv = config_.v_head_dim;
  const float scale = static_cast<float>(config_.softmax_scale);
  const Stream stream = options_.stream;

  mark("attn.mha_cache.write");
  Tensor kv = act({t, n * (dn + dv)});
  ops::linear(latent, w.kv_b_dense, kv, stream);
  Tensor k = act({t, n, dn + dr});
  Tensor v = act({t, n, dv});
  ops::mla_expand_kv(kv.reshape({t, n, dn + dv}), k_pe, k, v, stream);
  ops::write_mha_cache(k, v, step.slots, cache_layer, stream);

  Tensor o = act({t, n, dv});  // head-major per token, the o_proj input
  mark("attn.mha_cache.decode");
  for (const AbsorbedRun& run : step.absorbed_runs) {
    const int64_t rows = run.row_end - run.row_begin;
    ops::PagedMhaDecodeArgs args{q.slice(run.row_begin, run.row_end), cache_layer, run.block_table, run.seq_lens,
                                 run.query_start, scale};
    ops::AttentionState state{o.slice(run.row_begin, run.row_end), f32({rows, n})};
    ops::paged_mha_decode(args, state, stream);
  }
  mark("attn.mha_cache.prefill");
  // Context chunks start on block boundaries, so each gathers through a slice of the block table.
  const int64_t chunk = std::max<int64_t>(1, options_.context_chunk_tokens / kCacheBlockSize) * kCacheBlockSize;
  const auto& seqs = step.batch->sequences;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (step.absorbed[i]) continue;
    const int64_t b = seqs[i].query_start, e = b + seqs[i].query_len, ctx = seqs[i].context_len;
    const Tensor q_seq = q.slice(b, e);
    ops::AttentionState state{o.slice(b, e), f32({e - b, n})};
    ops::mha_attention(q_seq, k.slice(b, e), v.slice(b, e), ops::MhaParams{scale, /*causal=*/true}, state, stream);
    for (int64_t c0 = 0; c0 < ctx; c0 += chunk) {
      const int64_t c1 = std::min(ctx, c0 + chunk);
      const Tensor& table = step.mha_block_tables[i];
      Tensor ck = act({c1 - c0, n, dn + dr});
      Tensor cv = act({c1 - c0, n, dv});
      ops::gather_mha_cache(cache_layer, table.slice(c0 / kCacheBlockSize, table.dim(0)), ck, cv, stream);
      ops::AttentionState part{act({e - b, n, dv}), f32({e - b, n})};
      ops::mha_attention(q_seq, ck, cv, ops::MhaParams{scale, /*causal=*/false}, part, stream);
      ops::merge_attention_states(state, part, state, stream);
    }
  }
  mark("attn.o_proj");
  Tensor out = partial({t, w.o_proj.out_features()});  // [T, H]
  linear_into(w.o_proj, o.reshape({t, n * dv}), out);
  return out;
}

}  // namespace mlaserve
