// DeepSeekModel::forward: validates the batch, builds the step metadata once, runs the layers
// (pre-norm residual blocks with fused residual-add + RMSNorm) and the logits of sampled rows.
#include <algorithm>

#include "core/upload.h"
#include "model/step_metadata.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/rms_norm_fp8.h"

namespace mlaserve {
namespace {

void validate(const ForwardBatch& batch, const DeepSeekConfig& c, int64_t num_layers, int64_t row_dim,
              const LatentCache& cache) {
  const int64_t t = batch.num_tokens();
  MLA_CHECK(t > 0, "forward: empty batch");
  MLA_CHECK(static_cast<int64_t>(batch.positions.size()) == t && static_cast<int64_t>(batch.slot_mapping.size()) == t,
            "forward: {} tokens but {} positions and {} slots", t, batch.positions.size(), batch.slot_mapping.size());
  MLA_CHECK(cache.num_layers() == num_layers && cache.row_dim() == row_dim,
            "forward: cache has {} layers of {}-wide rows, the model needs {} of {}", cache.num_layers(),
            cache.row_dim(), num_layers, row_dim);
  int64_t covered = 0;
  for (const SequenceSlice& s : batch.sequences) {
    MLA_CHECK(s.query_start == covered && s.query_len > 0 && s.context_len >= 0,
              "forward: sequence slices must tile the batch in order (start {}, len {}, expected start {})",
              s.query_start, s.query_len, covered);
    const int64_t need = (int64_t{s.context_len} + s.query_len + kCacheBlockSize - 1) / kCacheBlockSize;
    MLA_CHECK(static_cast<int64_t>(s.block_table.size()) >= need,
              "forward: a sequence of {} tokens has {} cache blocks, needs {}", s.context_len + s.query_len,
              s.block_table.size(), need);
    for (int32_t b : s.block_table) {
      MLA_CHECK(b >= 0 && b < cache.num_blocks(), "forward: block id {} outside the cache's {} blocks", b,
                cache.num_blocks());
    }
    covered += s.query_len;
  }
  MLA_CHECK(covered == t, "forward: sequences cover {} of {} tokens", covered, t);
  for (int32_t id : batch.token_ids) {
    MLA_CHECK(id >= 0 && id < c.vocab_size, "forward: token id {} outside the vocabulary [0, {})", id, c.vocab_size);
  }
  for (int32_t r : batch.logit_rows) MLA_CHECK(r >= 0 && r < t, "forward: logit row {} outside the batch", r);
}

}  // namespace

Tensor DeepSeekModel::forward(const ForwardBatch& batch, LatentCache& cache) {
  validate(batch, config_, plan_.layers.size(), cache_row_dim(), cache);
  mark("prepare");
  const StepMetadata step = prepare_step(batch);
  return run_step(step, cache);
}

StepMetadata DeepSeekModel::prepare_step(const ForwardBatch& batch) {
  const int64_t t = batch.num_tokens();
  const Stream stream = options_.stream;
  StepMetadata step;
  step.batch = &batch;
  step.token_ids = device_i32(batch.token_ids);
  step.logit_rows = device_i32(batch.logit_rows);
  step.positions = device_i32(batch.positions);
  if (options_.device == Device::kCPU) {
    step.slots = Tensor::empty({t}, DType::kI64);
    std::copy(batch.slot_mapping.begin(), batch.slot_mapping.end(), step.slots.data<int64_t>());
  } else {
    step.slots = upload_async(batch.slot_mapping, stream);  // never waits for the GPU
  }
  for (const SequenceSlice& s : batch.sequences) {
    step.absorbed.push_back(options_.attention_form == AttentionForm::kAbsorbed ||
                            (options_.attention_form == AttentionForm::kAuto && s.query_len <= kMaxAbsorbedQueryLen));
  }
  const size_t nseq = batch.sequences.size();
  step.mha_block_tables.resize(nseq);
  for (size_t i = 0; i < nseq;) {
    const SequenceSlice& s = batch.sequences[i];
    if (!step.absorbed[i]) {
      step.mha_block_tables[i] = device_i32(s.block_table);
      ++i;
      continue;
    }
    size_t j = i;
    size_t max_blocks = 0;
    while (j < nseq && step.absorbed[j]) max_blocks = std::max(max_blocks, batch.sequences[j++].block_table.size());
    AbsorbedRun run{i, j, s.query_start, 0, {}, {}, {}, nullptr, 0};
    std::vector<int32_t> table((j - i) * max_blocks, 0), lens, starts{0};
    for (size_t k = i; k < j; ++k) {
      const SequenceSlice& q = batch.sequences[k];
      std::copy(q.block_table.begin(), q.block_table.end(), table.begin() + (k - i) * max_blocks);
      lens.push_back(q.context_len + q.query_len);
      run.max_seq_len = std::max<int64_t>(run.max_seq_len, lens.back());
      starts.push_back(starts.back() + q.query_len);
    }
    run.row_end = run.row_begin + starts.back();
    run.block_table = device_i32(table).reshape({static_cast<int64_t>(j - i), static_cast<int64_t>(max_blocks)});
    run.seq_lens = device_i32(lens);
    run.query_start = device_i32(starts);
    int32_t max_q_len = 0;
    for (size_t k = i; k < j; ++k) max_q_len = std::max(max_q_len, batch.sequences[k].query_len);
    if (options_.kv_cache_layout == KvCacheLayout::kLatent) {  // (kMha: paged_mha_decode plans itself)
      run.plan = ops::MlaDecodePlan::make(run.seq_lens, heads_, max_q_len, run.max_seq_len, stream,
                                          options_.mla_kv_multicast);
    }
    step.absorbed_runs.push_back(std::move(run));
    i = j;
  }
  rope_table(*std::max_element(batch.positions.begin(), batch.positions.end()));
  return step;
}

Tensor DeepSeekModel::run_step(const StepMetadata& step, LatentCache& cache) {
  const int64_t t = step.token_ids.dim(0), hidden = config_.hidden_size;
  const Stream stream = options_.stream;
  RegionTimer* stage = stage_clock_ ? &stage_clock_->begin() : nullptr;
  const auto stage_mark = [stage](const char* region) {
    if (stage != nullptr) stage->mark(region);
  };
  stage_mark("stage.input");
  mark("embed");
  Tensor h = act({t, hidden});  // the residual stream
  if (plan_.first_stage()) {
    ops::embedding(step.token_ids, weights_.embed, h, stream);
  } else {
    options_.pp_group->recv(h, plan_.pp_rank - 1, stream);  // the previous stage's residual stream
  }
  stage_mark("stage.layers");
  // The norms' outputs [T, H], with their FP8 quantisation where FP8 linears read them (model.h).
  NormedActivation normed{act({t, hidden}), fp8_input(t, hidden, attention_reads_fp8(0))};
  const float eps = static_cast<float>(config_.rms_norm_eps);
  ops::rms_norm_fp8(h, weights_.layers[0].input_norm, eps, normed.x, act_quant_, normed.q, stream);
  const int64_t num_layers = plan_.layers.size();  // this stage's layers, counted from 0
  for (int64_t i = 0; i < num_layers; ++i) {
    const LayerWeights& lw = weights_.layers[static_cast<size_t>(i)];
    Tensor attn_out = attention(i, normed, step, cache);
    all_reduce(attn_out);
    mark("norms");
    // h += attn; normed = norm(h), quantised for the FFN's FP8 linears into a fresh buffer (every
    // reader of the attention input's, the side stream's joined, is queued before this)
    normed.q = fp8_input(t, config_.hidden_size, ffn_reads_fp8(i, t));
    ops::add_rms_norm_fp8(attn_out, h, lw.post_attn_norm, eps, normed.x, act_quant_, normed.q, stream);
    const Tensor& next_norm = i + 1 < num_layers
                                  ? weights_.layers[static_cast<size_t>(i + 1)].input_norm
                                  : weights_.final_norm;
    ffn_and_norm(i, h, next_norm, normed, step.slots);  // h += ffn(normed); normed = norm(h) (ffn_block.cc)
  }
  Tensor logits;  // none from a stage before the last
  stage_mark("stage.output");
  if (plan_.last_stage()) {
    // Logits only for the rows that sample: `normed` already holds RMSNorm(h, model.norm).
    mark("lm_head");
    logits = compute_logits(normed.x, step.logit_rows);
  } else {
    mark("pp.send");
    options_.pp_group->send(h, plan_.pp_rank + 1, stream);
  }
  if (timer_) {
    timer_->stop();
    timer_->add_to(profile_);
  }
  if (stage != nullptr) {
    stage->stop();
    stage_clock_->end();
  }
  return logits;
}

}  // namespace mlaserve
