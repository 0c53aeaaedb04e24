// The feed-forward blocks of DeepSeekModel (MODEL_SPEC.md §2, §5) and the layer's end: the dense
// SwiGLU MLP of the first layers and the MoE of the rest (router in fp32, routed experts over the
// tokens that chose them, weighted combine accumulated onto the shared experts' output), then the
// residual add and the next RMSNorm (ffn_and_norm). Their outputs are partial sums under tensor
// parallelism: f32 there up to decode sizes (DeepSeekModel::partial).
#include <optional>
#include <utility>

#include "model/model.h"
#include "ops/embedding.h"
#include "ops/fp8_quant.h"
#include "ops/linear.h"
#include "ops/linear_fp8.h"
#include "ops/moe_combine_norm.h"
#include "ops/moe_dispatch.h"
#include "ops/moe_experts.h"
#include "ops/moe_route_gather.h"
#include "ops/rms_norm_fp8.h"
#include "ops/silu_mul.h"

namespace mlaserve {

ops::RouterParams router_params(const DeepSeekConfig& c) {
  ops::RouterParams p;
  p.scoring = c.scoring_func == ScoringFunc::kSigmoid ? ops::RouterScoring::kSigmoid : ops::RouterScoring::kSoftmax;
  switch (c.topk_method) {
    case TopkMethod::kGreedy: p.method = ops::RouterTopkMethod::kGreedy; break;
    case TopkMethod::kGroupLimitedGreedy: p.method = ops::RouterTopkMethod::kGroupLimitedGreedy; break;
    case TopkMethod::kNoAuxTc: p.method = ops::RouterTopkMethod::kNoAuxTc; break;
  }
  p.weighting = c.family == ModelFamily::kDeepSeekV2 ? ops::RouterWeighting::kNormalizeOrScale
                                                     : ops::RouterWeighting::kNormalizeThenScale;
  p.n_group = c.n_group;
  p.topk_group = c.topk_group;
  p.top_k = c.num_experts_per_tok;
  p.norm_topk_prob = c.norm_topk_prob;
  p.routed_scaling_factor = static_cast<float>(c.routed_scaling_factor);
  return p;
}

void DeepSeekModel::mlp(const MlpWeights& w, const NormedActivation& x, Tensor& out, Stream stream) {
  Tensor gate_up = linear(w.gate_up, x, stream);  // [T, 2I]
  const int64_t t = x.x.dim(0);
  if (w.down.is_fp8()) {  // SwiGLU fused with the down projection's input quantisation, or with the down itself
    ops::silu_mul_linear_fp8(gate_up, w.down.weight, w.down.scale_inv, act_quant_, out, stream);
    return;
  }
  Tensor hidden = act({t, w.gate_up.out_features() / 2});
  ops::silu_mul(gate_up, hidden, stream);
  linear_into(w.down, hidden, out, stream);
}

// The second half of a layer: h += FFN(normed), then normed = RMSNorm(h) · next_norm. How the
// FFN's output meets the residual stream depends on where the FFN's sum is complete:
//   - one GPU (tp_size 1) and an MoE: the routed experts' weighted combine, the residual add and
//     the next norm are one op, moe_combine_add_rms_norm (moe_and_norm): at decode sizes the
//     combine and the norm are each a small launch in the step's serial chain, and the norm only
//     re-reads what the combine wrote. Same arithmetic, bit for bit, as the two ops in sequence;
//   - a dense MLP, and any FFN under tensor parallelism (whose partial output is all-reduced
//     between the FFN and the residual add): ffn(), the all-reduce, then add_rms_norm, or
//     add_sum_rms_norm for an MoE's two parts.
// Each norm also writes the FP8 quantisation the next layer's attention reads, when it reads one
// (the final norm's lm_head does not).
void DeepSeekModel::ffn_and_norm(int64_t layer, Tensor& h, const Tensor& next_norm, NormedActivation& normed,
                                 const Tensor& slots) {
  const LayerWeights& lw = weights_.layers[static_cast<size_t>(layer)];
  const int64_t t = normed.x.dim(0), hidden = config_.hidden_size;
  const int64_t num_layers = plan_.layers.size();
  ops::Fp8Activations next_q = fp8_input(t, hidden, layer + 1 < num_layers && attention_reads_fp8(layer + 1));
  if (lw.moe && plan_.tp_size == 1) return moe_and_norm(*lw.moe, h, next_norm, normed, slots, std::move(next_q));
  const float eps = static_cast<float>(config_.rms_norm_eps);
  Tensor ffn_out = ffn(layer, normed, slots);
  all_reduce(ffn_out);
  mark("norms");
  normed.q = std::move(next_q);  // (the FFN input's readers are queued by now)
  if (ffn_out.ndim() == 3) {  // [2, T, H]: shared and routed experts apart (DeepSeekModel::moe)
    ops::add_sum_rms_norm_fp8(ffn_out.slice(0, 1).reshape({t, hidden}), ffn_out.slice(1, 2).reshape({t, hidden}), h,
                              next_norm, eps, normed.x, act_quant_, normed.q,
                              options_.stream);  // h += shared + routed; normed = norm(h)
  } else {
    ops::add_rms_norm_fp8(ffn_out, h, next_norm, eps, normed.x, act_quant_, normed.q,
                          options_.stream);  // h += ffn; normed = norm(h)
  }
}

Tensor DeepSeekModel::ffn(int64_t layer, const NormedActivation& m, const Tensor& slots) {
  const LayerWeights& lw = weights_.layers[static_cast<size_t>(layer)];
  if (lw.moe) return moe(*lw.moe, m, slots);
  mark("mlp");
  Tensor out = partial({m.x.dim(0), config_.hidden_size});
  mlp(*lw.mlp, m, out, options_.stream);
  return out;
}

// The MoE up to its combine: router in fp32 -> pairs grouped by expert -> rows gathered in expert
// order (one op, moe_route_gather.h: one kernel at decode sizes, the router's GEMV included) ->
// all experts as one grouped op. No host synchronisation. When the experts' grouped FP8 GEMMs
// would quantise the T·k gathered rows first (moe_experts_takes_quantized_rows: e4m3 weights on
// the GPU, more rows than the GEMV takes), the e4m3 codes and scales of the T token rows, which
// the norm before wrote (m.q, ffn_reads_fp8; quantised here when it did not), are gathered
// instead (gather_fp8_rows): the same bits, since the quantisation is per row, over k times fewer
// rows and half the gathered bytes. At decode sizes on the GEMV (moe_experts_reads_token_rows)
// nothing is gathered: the experts read the token rows through sorted_tokens (e4m3: the norm's
// codes of them where it wrote those).
// The shared experts, when the model has them, write shared_out [T, H] on the side stream beside
// the router and the routed experts, which do not depend on them (model.h,
// ModelOptions::side_stream): at one token the shared experts' ~15 us hide behind the routed
// chain's ~45 us; at prefill sizes they fill the SMs that the routing kernels leave idle. The
// branch forks before the routing but its work is queued after it, so that in a graph the routing
// kernels are issued first: issued the other way, the shared gate_up GEMM (e4m3 at 16-64 tokens:
// a one-wave persistent grid, three CTAs on every SM) took every SM and the router's first kernel
// started only as its CTAs left, ~7 us later, on the routed chain's critical path. V2-Lite e4m3
// decode step on one H200 (graph ms, shared first / routing first, two rounds): batch 16 5.335,
// 5.349 / 5.263, 5.270; 32 6.419, 6.439 / 6.235, 6.237; 64 7.012, 7.014 / 6.795, 6.787; batches
// 1-8 and bf16 within noise. The routed experts are told the branch runs beside them
// (GridPlacement::kBeside: at one or two tokens of e4m3 experts the down GEMV leaves it SMs,
// moe_gemv_down_sms_left). The branch is joined before this returns, so the combine that follows
// waits for both. The arithmetic is the same in either order.
ops::MoeCombineInputs DeepSeekModel::moe_routed(const MoeWeights& w, const NormedActivation& m, const Tensor& slots,
                                                Tensor shared_out, Tensor* held_offsets) {
  const int64_t t = m.x.dim(0), hidden = config_.hidden_size, k = config_.num_experts_per_tok;
  const int64_t num_experts = config_.n_routed_experts;
  const Stream stream = options_.stream;
  std::optional<ForkedBranch> shared_branch = w.shared ? fork_side_branch() : std::optional<ForkedBranch>();

  mark("moe.route");
  Tensor logits = f32({t, num_experts});  // fp32 accumulation and output (§5.1)
  const Device dev = options_.device;
  // The token rows' codes, when the norm wrote them (from two tokens a step, ffn_reads_fp8) and the
  // experts are e4m3: copied by the experts' GEMV instead of quantised there (the same bits).
  const ops::Fp8Activations token_codes = w.experts.is_fp8() ? m.q : ops::Fp8Activations{};
  const bool token_rows = ops::moe_experts_reads_token_rows(dev, t, t * k, w.experts);
  const bool quantized_rows = !token_rows && ops::moe_experts_takes_quantized_rows(dev, t * k, w.experts);
  ops::MoeRouteGatherOutputs routed_rows{
      {f32({t, k}), Tensor::empty({t, k}, DType::kI32, dev)},  // [T, k] weights and expert ids
      {Tensor::empty({num_experts + 1}, DType::kI32, dev), Tensor::empty({t * k}, DType::kI32, dev),
       Tensor::empty({t * k}, DType::kI32, dev)},
      quantized_rows || token_rows ? Tensor() : act({t * k, hidden})};  // [T·k, H] token rows in expert order
  ops::RouterParams routing = router_params(config_);
  routing.row_slots = slots;  // a decode graph's padding rows are routed as real rows (ops/moe_router.h)
  ops::moe_router_route_and_gather(m.x, w.router, w.correction_bias, routing, logits, route_arrivals_, routed_rows,
                                   stream);
  const ops::MoeGrouping& groups = routed_rows.grouping;
  Tensor rows_q, rows_scales;  // [T·k, H] e4m3, [T·k, H/128] f32: the quantised token rows in expert order
  if (quantized_rows) {
    const int64_t blocks = ops::fp8_num_blocks(hidden);
    ops::Fp8Activations m_q = m.q;  // [T, H] e4m3 + [T, H/128] scales
    if (!m_q.defined()) {  // the norm did not quantise (quantize_in_norms off, or a step it does not pay in)
      m_q = {Tensor::empty({t, hidden}, DType::kF8E4M3, dev), f32({t, blocks}), Tensor()};
      ops::quantize_activations_fp8(m.x, act_quant_, m_q.x_q, m_q.scales, stream);
    }
    rows_q = Tensor::empty({t * k, hidden}, DType::kF8E4M3, dev);
    rows_scales = f32({t * k, blocks});
    ops::gather_fp8_rows(groups.sorted_tokens, m_q.x_q, m_q.scales, rows_q, rows_scales, stream);
  }
  if (w.shared) {  // on the side branch, forked above, after the routing's kernels (the note above)
    if (!shared_branch) mark("mlp");
    mlp(*w.shared, m, shared_out, shared_branch ? shared_branch->stream() : stream);
  }
  mark("moe.experts");
  // This rank's experts [e0, e1) own the sorted rows [offsets[e0], offsets[e1]) (all of them
  // without expert parallelism): the grouped op runs over those rows; the others are never written,
  // and the combine reads only these (*held_offsets: offsets[e0 .. e1]).
  const IndexRange ex = plan_.experts;
  const bool all_experts = ex.size() == num_experts;
  const Tensor offsets = all_experts ? groups.expert_offsets : groups.expert_offsets.slice(ex.begin, ex.end + 1);
  MLA_CHECK(all_experts || held_offsets != nullptr,
            "moe_routed: a share of the experts needs a combine that reads their rows only");
  if (!all_experts) *held_offsets = offsets;
  Tensor expert_out = act({t * k, hidden});  // [T·k, H] in expert order; with a share, its experts' rows only
  Tensor swiglu = act({t * k, w.experts.intermediate()});  // workspace of the grouped op
  if (quantized_rows) {
    ops::moe_experts_quantized(rows_q, rows_scales, offsets, w.experts, act_quant_, swiglu, expert_out, stream);
  } else if (token_rows) {
    const ops::GridPlacement placement = shared_branch ? ops::GridPlacement::kBeside : ops::GridPlacement::kAlone;
    ops::moe_experts_token_rows(m.x, token_codes, groups.sorted_tokens, offsets, w.experts, act_quant_, swiglu,
                                expert_out, stream, placement);
  } else {
    ops::moe_experts(routed_rows.gathered, offsets, w.experts, act_quant_, swiglu, expert_out, stream);
  }
  if (shared_branch) shared_branch->join();
  // early_inputs: the routing kernel is at least two launches back (the experts' op launched two
  // or more after it), the residual written before the router; the shared output joined, though
  // in a graph its writer may still run (MoeCombineInputs::early_inputs).
  return {expert_out, groups.sorted_pairs, routed_rows.route.weights, w.shared ? shared_out : Tensor(),
          /*early_inputs=*/true};
}

// The FFN output of an MoE layer: the routed experts' weighted combine accumulated onto the shared
// experts' output. Under tensor parallelism with shared experts, where the step sums in f32
// (tp_sums_f32), the output is [2, T, H] f32: the shared experts' partial output, and the routed
// experts' partial combine (written, not accumulated: MoeCombineScope::accumulate) apart from it,
// so that the all-reduced shared output can be rounded before the routed sum is added, as on one
// GPU (add_sum_rms_norm); each rank holds a share of the shared experts' channels, so their
// partial outputs cannot be rounded before the all-reduce. Larger TP steps sum one [T, H] bf16
// output (a quarter of the bytes).
Tensor DeepSeekModel::moe(const MoeWeights& w, const NormedActivation& m, const Tensor& slots) {
  const int64_t t = m.x.dim(0), hidden = config_.hidden_size;
  const bool apart = w.shared && tp_sums_f32(t);
  Tensor out = apart ? f32({2, t, hidden}) : partial({t, hidden});
  Tensor routed = apart ? out.slice(1, 2).reshape({t, hidden}) : out;  // the combine's output
  const Tensor shared = apart ? out.slice(0, 1).reshape({t, hidden}) : out;
  // The combine writes routed where no shared output lies under it (no memset on the step's serial
  // path: ~1-1.5 us a layer at one token), and reads only the rows of the experts this rank holds
  // (expert_out's other rows are never written).
  ops::MoeCombineScope scope;
  scope.accumulate = w.shared && !apart;
  const ops::MoeCombineInputs experts = moe_routed(w, m, slots, shared, &scope.held_offsets);
  scope.early_inputs = experts.early_inputs;
  mark("moe.combine");
  ops::moe_combine(experts.expert_out, experts.sorted_pairs, experts.weights, routed, options_.stream, scope);
  return out;
}

// One GPU's MoE layer to its end (ffn_and_norm): h += shared + routed combine; normed =
// RMSNorm(h) · next_norm, quantised into next_q where that is not empty, in one op. Without shared
// experts the combine starts from zero inside the op (no zeroed buffer).
void DeepSeekModel::moe_and_norm(const MoeWeights& w, Tensor& h, const Tensor& next_norm, NormedActivation& normed,
                                 const Tensor& slots, ops::Fp8Activations next_q) {
  const Tensor shared = w.shared ? act({normed.x.dim(0), config_.hidden_size}) : Tensor();  // [T, H]
  const ops::MoeCombineInputs experts = moe_routed(w, normed, slots, shared);
  mark("moe.combine");  // the combine, the residual add and the next norm
  normed.q = std::move(next_q);  // (the MoE input's readers are queued by now)
  ops::moe_combine_add_rms_norm_fp8(experts, h, next_norm, static_cast<float>(config_.rms_norm_eps), normed.x,
                                    act_quant_, normed.q, options_.stream);
}

}  // namespace mlaserve
