// DeepSeekModel: the DeepSeek-V2/V3 forward pass (MODEL_SPEC.md §2-§5), written once against the
// op contracts of src/ops. One call runs one step of a flat batch (forward_batch.h): every
// sequence's new tokens, prefill chunks and decode tokens mixed.
//
// Per layer:
//   a = RMSNorm(h)                                         [T, H]
//   MLA (mla_block.cc):
//     q = q_proj(a) or q_b(RMSNorm(q_a(a)))                [T, n, 192]  rope on channels 128..191
//     ckv = kv_a_proj_with_mqa(a)                          [T, 576] -> latent = RMSNorm(ckv[:512]),
//                                                          k_pe = RoPE(ckv[512:])
//     write [latent | k_pe] into the paged cache at slot_mapping
//     per sequence, by form (ModelOptions::attention_form):
//       absorbed: q_abs = [W_UK^T q_nope | q_pe] [len, n, 576] -> mla_decode over the cache
//                 -> o_lat [len, n, 512] -> o = W_UV o_lat [len, n, 128]
//       MHA:      K/V of the new tokens up-projected through kv_b_proj, causal attention; cached
//                 context gathered and up-projected chunk by chunk, non-causal attention, and
//                 the partial results merged by log-sum-exp
//     h += o_proj(o)                                       [T, H]
//   m = RMSNorm(h); h += FFN(m): dense SwiGLU, or MoE (ffn_block.cc)
// logits = RMSNorm(h[logit_rows]) · lm_head^T               [R, V] f32
//
// The automatic form choice: a sequence with at most kMaxAbsorbedQueryLen new tokens (decode,
// speculative verification) uses the absorbed form, which reads each cached row once for all
// heads; longer chunks (prefill) use the MHA form, ~3.4x fewer attention FLOPs (§4.3).
//
// Split across ranks (ModelOptions::shard, model/shard_plan.h): a rank holds a share of the heads,
// MLP channels, experts and vocabulary, and sums the partial outputs of o_proj and of the FFN
// with one all-reduce each over ModelOptions::tp_group; the logits of its vocabulary shard are
// all-gathered. The partial outputs are f32 on the GPU too (GEMMs and the MoE combine write
// their fp32 sums unrounded), all-reduced in f32, and the sum is rounded to bf16 inside the
// residual add of add_rms_norm: the roundings of one GPU, whose GEMM stores the whole sum in
// bf16 (rounding each rank's partial and the all-reduce's additions in bf16 flipped near-tied
// expert choices). An MoE with shared experts all-reduces their partial output and the routed
// experts' partial combine side by side, so that the shared output is rounded before the routed
// sum is added, as one GPU's combine does (add_sum_rms_norm). Bytes all-reduced per token and
// layer: 4·H after attention and a dense MLP, 8·H after an MoE (2·H each in bf16). A pipeline
// stage runs its layer range only: it receives the residual stream from the previous stage
// (pp_group) and sends it on, and only the last stage makes logits.
//
// FP8 weights (issue #6): the activations an FP8 linear reads are quantised per token and 128
// channels. Where a norm's output feeds FP8 linears (the attention input: q_proj or q_a_proj and
// kv_a_proj_with_mqa; the FFN input: the dense or shared experts' gate_up and the routed experts'
// rows past the GEMV's few, or their codes where the GEMV copies those,
// ops::moe_experts_wants_token_codes; q_a_layernorm's output: q_b_proj) the norm writes that
// quantisation in the same pass (ops/rms_norm_fp8.h, NormedActivation below) and each of them
// reads it, on the GPU from two tokens a step (at one the GEMV on narrow rows quantises inside,
// and the fused norm costs more than it saves; ops::fp8_norm_quantization_pays) and at every
// step for rows as wide as V3's; the down projections read silu_mul_quantize_fp8's
// (ffn_block.cc); o_proj reads the attention ops' codes in steps with MHA-form rows (prefill:
// ops::AttentionFp8Output, written where o is, mla_block.cc) and quantises its own input in
// decode steps.
//
// Backends: the model runs where its weights are (ModelOptions::device). On the CPU every
// activation is f32 (the reference); on the GPU activations are bf16 with fp32 accumulation
// inside every op, router logits and softmax statistics in fp32, logits in fp32. Ops dispatch
// on their tensors' device (ops/dispatch.h), so this graph is written once for both.
#pragma once

#include <cstdint>
#include <optional>
#include <memory>

#include "core/region_timer.h"
#include "core/side_stream.h"
#include "core/stage_clock.h"
#include "core/collectives.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "kv/latent_cache.h"
#include "model/config.h"
#include "model/forward_batch.h"
#include "model/shard_plan.h"
#include "model/weights.h"
#include "ops/fp8_quant.h"
#include "ops/l2_prefetch.h"
#include "ops/linear_fp8.h"
#include "ops/merge_attention_states.h"
#include "ops/mla_absorbed_attention.h"
#include "ops/moe_combine_norm.h"
#include "ops/moe_router.h"

namespace mlaserve {

struct StepMetadata;  // the batch as device tensors, built once per step (step_metadata.h)
struct AbsorbedRun;

enum class AttentionForm {
  kAuto,      // absorbed for short query chunks, MHA for prefill chunks
  kMha,       // always the MHA form (tests)
  kAbsorbed,  // always the absorbed form (tests)
};

inline constexpr int32_t kMaxAbsorbedQueryLen = 4;

// The largest [T, H] partial output a tensor-parallel step sums in f32 (DeepSeekModel::tp_sums_f32):
// V2-Lite's up to 128 tokens, V3's up to 36.
inline constexpr int64_t kTpF32SumMaxBytes = int64_t{1} << 20;

// The router's parameters for a config (scoring, top-k method, weighting, groups; ffn_block.cc):
// what every MoE layer of the model routes with.
ops::RouterParams router_params(const DeepSeekConfig& c);

// What the paged cache holds per token and layer (issue #7).
enum class KvCacheLayout {
  kLatent,  // MLA: one row [RMSNorm(latent) (512) | RoPE(k_pe) (64)] = 576 values for all heads
  kMha,     // as an MHA model caches (vLLM before MLA): per head K (192) and V (128), the new
            // tokens up-projected once when written; n · 320 values (16 heads: 8.9x, 128: 71x).
            // Decode attends over the cached K/V (paged_mha_decode), prefill gathers them
            // (mha_cache_block.cc). For comparing capacity and throughput with the latent cache.
};

struct ModelOptions {
  AttentionForm attention_form = AttentionForm::kAuto;
  KvCacheLayout kv_cache_layout = KvCacheLayout::kLatent;
  int64_t context_chunk_tokens = 4096;  // MHA form: cached context up-projected per chunk
  Device device = Device::kCPU;         // where the weights are and the model runs
  Stream stream;                        // GPU: the stream every op is queued on
  // GPU: two independent chains of each layer overlap on a second stream (core/side_stream.h; the
  // same arithmetic): the latent row (kv_a, norm, RoPE, cache write) beside the query projection
  // (mla_block.cc), the MoE's shared experts beside the router and the routed experts
  // (ffn_block.cc). At decode sizes the kernels each hold few SMs; at prefill sizes the side chain
  // fills the routing kernels' idle SMs and the big GEMMs' last waves (bench/NOTES-engine.md,
  // fifteenth session: TTFT of 8,192 tokens -2% BF16, -5% FP8). false queues every op on
  // `stream`, in order.
  bool side_stream = true;
  // GPU, latent layout: a decode run of one query token a sequence, 16 to 128 heads a rank (a
  // multiple of 16: V2-Lite, V3 under TP8, V2 / V3 under TP4 and TP2), as many sequences as
  // ops::mla_absorbed_attention_max_seqs allows, of at most ops::mla_absorbed_max_seq_len tokens,
  // runs its absorbed attention as one fused kernel (ops/mla_absorbed_attention.h) instead of the
  // absorption, MLA decode and up-projection kernels (the same values up to the attention's
  // summation order).
  // false keeps the three ops (A/B: decode_step_bench --fused-attention off; tests).
  bool fused_absorbed_attention = true;
  // FP8 weights: the norms before FP8 linears also write the quantised activation those read
  // (NormedActivation below), instead of a quantiser pass before each reader, in steps where that
  // pays (on the GPU from two tokens, or at every step for wide rows:
  // ops::fp8_norm_quantization_pays, rms_norm_fp8.h; other steps run as with false, where the GEMVs
  // quantise inside); so do the prefill attention ops for o_proj under the same rule. The same
  // bits either way.
  // false: each FP8 linear quantises its own input (A/B: decode_step_bench --norm-quant off; tests).
  bool quantize_in_norms = true;
  // The MLA decode kernel's query tile pairs share each KV block by multicast where its rule
  // allows (128 heads; ops MlaDecodeSchedule::kv_multicast). false: each tile copies every block
  // (A/B: decode_step_bench --mla-multicast off).
  bool mla_kv_multicast = true;
  // This rank's share of a model split across ranks (unset: the whole model). The weights must
  // already be cut to it (model/shard.h); tp_group is needed when shard.tp_size > 1, pp_group
  // (ranks numbered by stage) when shard.pp_size > 1.
  std::optional<ShardPlan> shard;
  Collectives* tp_group = nullptr;
  Collectives* pp_group = nullptr;
};

// A normed activation as the layer's linears read it: the rows and, when FP8 linears read them,
// their FP8 quantisation, written by the norm that makes them (ops/rms_norm_fp8.h); an FP8 linear
// takes q instead of quantising x again. q is empty when no reader is FP8.
struct NormedActivation {
  Tensor x;               // [T, K] bf16 on the GPU, f32 on the CPU
  ops::Fp8Activations q;  // [T, K] e4m3 + scales (on the GPU also group-major), or empty
};

class DeepSeekModel {
 public:
  DeepSeekModel(DeepSeekConfig config, ModelWeights weights, ModelOptions options = {});

  const DeepSeekConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const ShardPlan& shard() const { return plan_; }
  int64_t num_local_heads() const { return heads_; }  // attention heads of this rank
  bool mla_kv_multicast() const { return options_.mla_kv_multicast; }  // ModelOptions::mla_kv_multicast

  // A cache sized for this model on its device (f32 rows on the CPU, bf16 on the GPU), with rows
  // of cache_row_dim() values: the latent row, or this rank's heads' K and V (KvCacheLayout).
  LatentCache make_cache(int64_t num_blocks) const;
  // The class of decode steps of num_seqs one-token sequences whose longest has `max_seq_len`
  // tokens, as a bound on the class's lengths: steps of one class run the same kernels
  // (attend_absorbed picks the fused attention by AbsorbedRun::max_seq_len, and at some batch
  // sizes the decode plan its kernel: ops::kMlaDecodeShortSeqLen), so one CUDA graph serves a
  // class (engine/decode_graphs.h).
  int64_t decode_seq_len_class(int64_t max_seq_len, int64_t num_seqs) const;
  int64_t cache_row_dim() const;
  DType activation_dtype() const { return act_dtype_; }

  // Runs one step: writes the new tokens' latent rows into `cache` and returns the logits of
  // batch.logit_rows, [R, vocab] f32. A pipeline stage other than the last returns an undefined
  // tensor (it sent its residual stream to the next stage).
  Tensor forward(const ForwardBatch& batch, LatentCache& cache);

  // forward() in two halves, for CUDA graphs (engine/decode_graphs.h):
  //   prepare_step  uploads the batch's description to the device (synchronous copies) and
  //                 plans the step (absorbed-form runs, their split-KV plans); the batch must
  //                 outlive the metadata;
  //   run_step      queues the layers on the model's stream: no host synchronisation, no upload
  //                 and nothing that depends on host data beyond the metadata's shapes and its
  //                 absorbed/MHA structure, so a decode step can be captured and replayed with
  //                 new contents in the same tensors.
  StepMetadata prepare_step(const ForwardBatch& batch);
  Tensor run_step(const StepMetadata& step, LatentCache& cache);

  // The stream every op is queued on (a graph is captured on a stream of its own).
  Stream stream() const { return options_.stream; }
  void set_stream(Stream stream) { options_.stream = stream; }
  // Grows the RoPE table to cover positions [0, max_position] now (a captured graph holds the
  // table's address, so it must not grow later).
  void reserve_positions(int64_t max_position) { rope_table(max_position); }

  // Profiling: when on, every forward times its regions (step preparation, attention by form,
  // MoE router / experts / shared experts, dense MLPs, lm_head) on the model's stream and waits
  // for the step to finish; profile() holds the milliseconds summed over the steps since. With
  // `host_clock`, the regions are timed on the host instead (how long the host takes to queue
  // each one, its waits included) and nothing waits for the GPU.
  void set_profiling(bool on, bool host_clock = false);
  bool profiling() const { return timer_ != nullptr; }
  const RegionTotals& profile() const { return profile_; }
  // The stage clock: when on, every forward's device time is split into "stage.input" (the
  // embedding, or the wait for and receive of the previous stage's residual stream), "stage.layers"
  // and "stage.output" (the logits, or the send to the next stage), read a few forwards later so
  // that nothing waits for the GPU (core/stage_clock.h). stage_profile() waits for the rest.
  void set_stage_clock(bool on);
  bool stage_clock_on() const { return stage_clock_ != nullptr; }
  const RegionTotals& stage_profile();
  int64_t stage_forwards() const { return stage_clock_ ? stage_clock_->forwards() : 0; }

 private:

  // a [T, H] normed input -> o_proj output [T, H] (this rank's heads only: a partial sum under
  // tensor parallelism). `layer` counts from the first layer of this stage.
  Tensor attention(int64_t layer, const NormedActivation& a, const StepMetadata& step, LatentCache& cache);
  // Whether a decode run of num_seqs sequences whose longest has max_seq_len tokens may take the
  // fused absorbed attention (ModelOptions::fused_absorbed_attention, the heads and sequences the
  // GPU holds clusters for; the op's own fit test decides the rest).
  bool fused_attention_for(int64_t max_seq_len, int64_t num_seqs) const;
  // The fused op's arguments for a run (rope_positions: its rows' positions when the op applies
  // the query's RoPE itself, else undefined).
  ops::MlaAbsorbedArgs fused_attention_args(const MlaWeights& w, const AbsorbedRun& run, const Tensor& q,
                                            const Tensor& cache_layer, const Tensor& rope_positions) const;
  // The fused op's arguments where it takes the whole step (one absorbed run of every sequence,
  // which it fits), the query's RoPE inside (the RoPE kernel then leaves the query chain); else none.
  std::optional<ops::MlaAbsorbedArgs> fused_attention_of_step(const MlaWeights& w, const StepMetadata& step,
                                                              const Tensor& q, const Tensor& cache_layer,
                                                              const Tensor& o) const;
  // What o_proj's GEMV pulls into L2 while it waits through the fused attention of `layer`
  // (ops/l2_prefetch.h): the layer's shared experts' down projection and the next layer's first
  // query projection (q_proj or q_a_proj, in this stage), the weight passes the step's critical
  // path comes to after the routed experts; the op keeps what fits its L2.
  ops::L2Prefetches weights_after_attention(int64_t layer) const;
  // Write o [rows, n, dv]: a run of consecutive absorbed-form sequences (one mla_decode call),
  // or one MHA-form sequence (its new tokens, then its cached context chunk by chunk; o_q, when
  // defined, its rows' FP8 codes for o_proj, written by the last of those ops).
  void attend_absorbed(const MlaWeights& w, const AbsorbedRun& run, const Tensor& q,
                       const Tensor& cache_layer, Tensor& o);
  void attend_mha(const MlaWeights& w, const SequenceSlice& seq, const Tensor& block_table, const Tensor& q,
                  const Tensor& latent, const Tensor& k_pe, const Tensor& cache_layer, Tensor& o,
                  const ops::AttentionFp8Output& o_q);
  // KvCacheLayout::kMha (mha_cache_block.cc): writes the new tokens' per-head K/V into the cache
  // layer and attends over it; q [T, n, 192] -> o_proj output [T, H].
  Tensor attention_mha_cache(const MlaWeights& w, const StepMetadata& step, const Tensor& q, const Tensor& latent,
                             const Tensor& k_pe, Tensor& cache_layer);
  // The layer's second half (ffn_block.cc): h += FFN(normed), then normed = RMSNorm(h) ·
  // next_norm (the next layer's input norm, or the final norm), with normed.q the quantisation
  // the next layer's attention reads (or empty). h and normed [T, H].
  void ffn_and_norm(int64_t layer, Tensor& h, const Tensor& next_norm, NormedActivation& normed, const Tensor& slots);
  // m [T, H] -> the FFN's output [T, H], or [2, T, H] (moe(): the shared experts' and the routed
  // experts' partial outputs apart, under tensor parallelism).
  Tensor ffn(int64_t layer, const NormedActivation& m, const Tensor& slots);
  Tensor moe(const MoeWeights& w, const NormedActivation& m, const Tensor& slots);
  // One GPU's MoE layer ending in moe_combine_add_rms_norm (ffn_and_norm's arguments; next_q the
  // next layer's quantised input to write, or empty).
  void moe_and_norm(const MoeWeights& w, Tensor& h, const Tensor& next_norm, NormedActivation& normed,
                    const Tensor& slots, ops::Fp8Activations next_q);
  // The MoE up to its combine: the routed experts' outputs and routing, and the shared experts'
  // output written into shared_out [T, H] (ignored, and returned undefined, without them). Where
  // this rank holds a share of the experts (expert parallelism), only their rows of expert_out are
  // written and *held_offsets (required then) gets their expert_offsets entries, the combine's
  // ops::MoeCombineScope::held_offsets.
  ops::MoeCombineInputs moe_routed(const MoeWeights& w, const NormedActivation& m, const Tensor& slots,
                                   Tensor shared_out, Tensor* held_offsets = nullptr);
  void mlp(const MlpWeights& w, const NormedActivation& x, Tensor& out, Stream stream);  // x [T, H] -> out [T, H]
  // Whether FP8 linears read the attention input of `layer` (q_proj or q_a_proj,
  // kv_a_proj_with_mqa), and its FFN input at t tokens (the dense or shared experts' gate_up, the
  // routed experts' quantised rows or token rows' codes, ops::moe_experts_wants_token_codes):
  // where the norm before them quantises its output too.
  bool attention_reads_fp8(int64_t layer) const;
  bool ffn_reads_fp8(int64_t layer, int64_t t) const;
  // Buffers for the quantised copy of a [t, k] activation: codes, token-major scales and, on the
  // GPU with group_major, the group-major scales cuBLASLt reads (written in the same pass by the
  // quantising op; without them cuBLASLt's path transposes the token-major ones).
  ops::Fp8Activations fp8_buffers(int64_t t, int64_t k, bool group_major = true) const;
  // fp8_buffers when `wanted` and the norms quantise [t, k] rows (ModelOptions::quantize_in_norms,
  // ops::fp8_norm_quantization_pays), for the norm to write; empty otherwise.
  ops::Fp8Activations fp8_input(int64_t t, int64_t k, bool wanted, bool group_major = true) const;
  // out [T, out_features]; on `stream`, or the model's stream when it is not given; an FP8 w's
  // GEMM planned for `placement` (kBeside: while a kernel on the side stream holds part of the GPU);
  // a bf16 w's GEMV pulls `prefetch` into L2 while it waits (ops/l2_prefetch.h).
  void linear_into(const Linear& w, const Tensor& x, Tensor& out, std::optional<Stream> stream = {},
                   ops::GridPlacement placement = ops::GridPlacement::kAlone,
                   const ops::L2Prefetches& prefetch = {}) const;
  Tensor linear(const Linear& w, const Tensor& x, std::optional<Stream> stream = {}) const;  // [T, in] -> [T, out]
  // The same of a normed activation: an FP8 w reads x.q when it is there.
  void linear_into(const Linear& w, const NormedActivation& x, Tensor& out, std::optional<Stream> stream = {},
                   ops::GridPlacement placement = ops::GridPlacement::kAlone,
                   const ops::L2Prefetches& prefetch = {}) const;
  Tensor linear(const Linear& w, const NormedActivation& x, std::optional<Stream> stream = {},
                ops::GridPlacement placement = ops::GridPlacement::kAlone) const;
  // A branch on the side stream, or none (every op on the model's stream) when side_stream is
  // off or the model runs on the CPU.
  std::optional<ForkedBranch> fork_side_branch();
  Tensor act(Shape shape) const { return Tensor::empty(std::move(shape), act_dtype_, options_.device); }
  // An output [T, H] that all_reduce sums over the tensor-parallel group (o_proj, the FFN): f32
  // where tp_sums_f32(T), so that the ranks' partial sums are added unrounded and the sum is
  // rounded to bf16 by the add_rms_norm that adds it to the residual stream, as on one GPU; act()
  // otherwise (one GPU; and larger TP steps, whose partial outputs are rounded to bf16 before
  // they are summed: half the bytes of a sum whose bytes bound it).
  Tensor partial(Shape shape) const { return tp_sums_f32(shape.at(0)) ? f32(std::move(shape)) : act(std::move(shape)); }
  // Whether a tensor-parallel step of `tokens` rows sums its partial outputs in f32: while a
  // [T, H] f32 sum is at most kTpF32SumMaxBytes (decode sizes, where a sum's latency counts, not
  // its bytes: dist/peer_all_reduce.h takes them). Measured on two H200s (bench/NOTES-dist.md,
  // 2026-11-30): V2-Lite's prefill steps of ~2,560 tokens spent ~1/3 of their time in f32 sums.
  bool tp_sums_f32(int64_t tokens) const {
    return plan_.tp_size > 1 && tokens * config_.hidden_size * int64_t{sizeof(float)} <= kTpF32SumMaxBytes;
  }
  Tensor f32(Shape shape) const { return Tensor::empty(std::move(shape), DType::kF32, options_.device); }
  // The values on the model's device: on the GPU an asynchronous upload on the model's stream
  // (core/upload.h), so that preparing a step never waits for the steps queued before it.
  Tensor device_i32(const std::vector<int32_t>& values) const;
  const Tensor& rope_table(int64_t max_position);  // [P, 64] cos|sin, grown on demand
  void all_reduce(Tensor& partial);                // sums the tensor-parallel group's partial outputs
  Tensor compute_logits(const Tensor& normed, const Tensor& rows);  // rows [R] i32 -> [R, V] f32

  void mark(const char* region) {
    if (timer_) timer_->mark(region);
  }

  DeepSeekConfig config_;
  ModelWeights weights_;
  ModelOptions options_;
  ShardPlan plan_;
  int64_t heads_ = 0;  // attention heads of this rank
  ops::ActQuantParams act_quant_;
  DType act_dtype_ = DType::kF32;
  Tensor cos_sin_;
  Tensor route_arrivals_;  // GPU: [1] i32, moe_router_route_and_gather's counter (zero between calls)
  SideStream side_;  // GPU: made at the first fork (the first step runs on the model's device)
  std::unique_ptr<RegionTimer> timer_;  // set while profiling
  RegionTotals profile_;
  std::unique_ptr<StageClock> stage_clock_;  // set while the stage clock is on
};

}  // namespace mlaserve
