#include "model/shard.h"

#include "ops/fp8_block.h"

namespace mlaserve {
namespace {

Tensor copy_rows(const Tensor& t, int64_t begin, int64_t end) { return t.slice(begin, end).clone(); }

// Columns [begin, end) of a 2-D tensor, copied.
Tensor copy_cols(const Tensor& t, int64_t begin, int64_t end) {
  MLA_CHECK(t.ndim() == 2 && 0 <= begin && begin <= end && end <= t.dim(1), "columns [{}, {}) of {}", begin, end,
            shape_str(t.shape()));
  const size_t elem = dtype_size(t.dtype());
  Tensor out = Tensor::empty({t.dim(0), end - begin}, t.dtype(), t.device());
  copy_bytes_2d(out.raw(), (end - begin) * elem, out.device(), static_cast<const char*>(t.raw()) + begin * elem,
                t.dim(1) * elem, t.device(), (end - begin) * elem, t.dim(0));
  return out;
}

// [E, 2I, X] -> [E, 2 (c1 - c0), X]: rows [c0, c1) (gate) and [I + c0, I + c1) (up) of every
// expert, copied (the experts' fused gate_up, or its scale blocks with I, c0, c1 in blocks).
Tensor cut_expert_gate_up(const Tensor& t, int64_t i, int64_t c0, int64_t c1) {
  MLA_CHECK(t.ndim() == 3 && t.dim(1) == 2 * i && 0 <= c0 && c0 <= c1 && c1 <= i, "rows [{}, {}) of each half of {}",
            c0, c1, shape_str(t.shape()));
  const int64_t e = t.dim(0), w = c1 - c0;
  const size_t row = static_cast<size_t>(t.dim(2)) * dtype_size(t.dtype());
  Tensor out = Tensor::empty({e, 2 * w, t.dim(2)}, t.dtype(), t.device());
  for (int64_t half = 0; half < 2; ++half) {
    copy_bytes_2d(static_cast<char*>(out.raw()) + half * w * row, 2 * w * row, out.device(),
                  static_cast<const char*>(t.raw()) + (half * i + c0) * row, 2 * i * row, t.device(), w * row, e);
  }
  return out;
}

// [E, X, I] -> [E, X, c1 - c0]: columns [c0, c1) of every expert's rows, copied.
Tensor cut_expert_cols(const Tensor& t, int64_t c0, int64_t c1) {
  const int64_t e = t.dim(0), x = t.dim(1);
  return copy_cols(t.reshape({e * x, t.dim(2)}), c0, c1).reshape({e, x, c1 - c0});
}

// Every held expert cut to the intermediate channels [c0, c1); for FP8 the cut must fall on the
// 128-wide scale blocks.
void cut_expert_channels(ops::ExpertWeights& e, IndexRange r) {
  const int64_t im = e.intermediate();
  if (e.is_fp8()) {
    const int64_t b = ops::kFp8BlockSize;
    MLA_CHECK(im % b == 0 && r.begin % b == 0 && r.end % b == 0,
              "routed-expert channels [{}, {}) of an FP8 expert of {} channels do not align with its 128-wide scale "
              "blocks: choose a tensor-parallel size that splits the experts on 128-channel boundaries, or expert "
              "parallelism",
              r.begin, r.end, im);
    e.gate_up_scale = cut_expert_gate_up(e.gate_up_scale, im / b, r.begin / b, r.end / b);
    e.down_scale = cut_expert_cols(e.down_scale, r.begin / b, r.end / b);
  }
  e.gate_up = cut_expert_gate_up(e.gate_up, im, r.begin, r.end);
  e.down = cut_expert_cols(e.down, r.begin, r.end);
}

void check_fp8_cut(const Linear& w, int64_t begin, int64_t end, int64_t extent, const char* what) {
  if (!w.is_fp8()) return;
  const int64_t b = ops::kFp8BlockSize;
  MLA_CHECK(begin % b == 0 && (end % b == 0 || end == extent),
            "{} [{}, {}) of an FP8 weight {} do not align with its 128-wide scale blocks: choose a tensor-parallel "
            "size that splits the model on 128-channel boundaries",
            what, begin, end, shape_str(w.weight.shape()));
}

Linear cut_rows(const Linear& w, int64_t begin, int64_t end) {
  check_fp8_cut(w, begin, end, w.out_features(), "rows");
  const Linear view = linear_rows(w, begin, end);
  return Linear{view.weight.clone(), view.scale_inv.defined() ? view.scale_inv.clone() : Tensor()};
}

// Gate rows [i0, i1) and up rows [I + i0, I + i1) of a fused [2I, H] gate_up; down columns.
MlpWeights cut_mlp(const MlpWeights& m, IndexRange r) {
  const int64_t width = m.gate_up.out_features() / 2;
  if (r.begin == 0 && r.end == width) return m;
  return MlpWeights{concat_rows(cut_rows(m.gate_up, r.begin, r.end), cut_rows(m.gate_up, width + r.begin, width + r.end)),
                    linear_cols(m.down, r.begin, r.end)};
}

}  // namespace

ShardPlan whole_model_plan(const DeepSeekConfig& c) {
  ShardPlan p;
  p.heads = {0, c.num_attention_heads};
  p.mlp = {0, c.intermediate_size};
  p.shared = {0, c.n_shared_experts > 0 ? c.shared_intermediate_size() : 0};
  p.experts = {0, c.n_routed_experts};
  p.expert_channels = {0, c.n_routed_experts > 0 ? c.moe_intermediate_size : 0};
  p.vocab = {0, c.vocab_size};
  p.vocab_shard = c.vocab_size;
  p.layers = {0, c.num_hidden_layers};
  return p;
}

bool holds_whole_model(const ShardPlan& p, const DeepSeekConfig& c) {
  const ShardPlan w = whole_model_plan(c);
  return p.heads == w.heads && p.mlp == w.mlp && p.shared == w.shared && p.experts == w.experts &&
         p.expert_channels == w.expert_channels && p.vocab == w.vocab && p.vocab_shard == w.vocab_shard &&
         p.layers == w.layers;
}

Linear linear_cols(const Linear& w, int64_t begin, int64_t end) {
  check_fp8_cut(w, begin, end, w.in_features(), "columns");
  Linear out{copy_cols(w.weight, begin, end), {}};
  if (w.is_fp8()) {
    out.scale_inv = copy_cols(w.scale_inv, begin / ops::kFp8BlockSize, ops::fp8_num_blocks(end));
  }
  return out;
}

void shard_layer(LayerWeights& l, const DeepSeekConfig& c, const ShardPlan& plan) {
  MlaWeights& a = l.attn;
  const int64_t n = c.num_attention_heads, h0 = plan.heads.begin, h1 = plan.heads.end;
  if (h0 != 0 || h1 != n) {
    const int64_t qk = c.qk_head_dim, kv = c.qk_nope_head_dim + c.v_head_dim, dv = c.v_head_dim;
    std::optional<Linear>& q = a.q_proj ? a.q_proj : a.q_b_proj;
    *q = cut_rows(*q, h0 * qk, h1 * qk);
    const bool shared_dense = a.kv_b_dense.raw() == a.kv_b_proj.weight.raw();
    a.kv_b_proj = cut_rows(a.kv_b_proj, h0 * kv, h1 * kv);
    a.kv_b_dense = shared_dense ? a.kv_b_proj.weight : copy_rows(a.kv_b_dense, h0 * kv, h1 * kv);
    a.o_proj = linear_cols(a.o_proj, h0 * dv, h1 * dv);
  }
  if (l.mlp) l.mlp = cut_mlp(*l.mlp, plan.mlp);
  if (l.moe) {
    MoeWeights& m = *l.moe;
    if (plan.experts.size() != m.experts.num_experts()) {
      ops::ExpertWeights& e = m.experts;
      const int64_t e0 = plan.experts.begin, e1 = plan.experts.end;
      e.gate_up = copy_rows(e.gate_up, e0, e1);
      e.down = copy_rows(e.down, e0, e1);
      if (e.gate_up_scale.defined()) {
        e.gate_up_scale = copy_rows(e.gate_up_scale, e0, e1);
        e.down_scale = copy_rows(e.down_scale, e0, e1);
      }
    }
    if (plan.expert_channels.size() != m.experts.intermediate()) cut_expert_channels(m.experts, plan.expert_channels);
    if (m.shared) m.shared = cut_mlp(*m.shared, plan.shared);
  }
}

Tensor shard_lm_head(const Tensor& lm_head, const ShardPlan& plan) {
  if (plan.vocab.begin == 0 && plan.vocab.end == lm_head.dim(0) && plan.vocab_shard == lm_head.dim(0)) return lm_head;
  Tensor out = Tensor::empty({plan.vocab_shard, lm_head.dim(1)}, lm_head.dtype(), lm_head.device());
  if (plan.vocab.size() < plan.vocab_shard) out.fill_bytes(0);
  copy_bytes(out.raw(), out.device(), lm_head.slice(plan.vocab.begin, plan.vocab.end).raw(), lm_head.device(),
             static_cast<size_t>(plan.vocab.size()) * lm_head.dim(1) * dtype_size(lm_head.dtype()));
  return out;
}

}  // namespace mlaserve
