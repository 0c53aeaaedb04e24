// The per-step description of a ForwardBatch that every layer of DeepSeekModel reuses: token
// positions and cache slots on the model's device, which attention form each sequence takes,
// and the block tables of each run of consecutive absorbed-form sequences (one mla_decode call
// per run) and of each MHA-form sequence (for gathering its cached context).
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "model/forward_batch.h"
#include "model/model.h"
#include "ops/mla_decode.h"

namespace mlaserve {

// Consecutive absorbed-form sequences, attended by one mla_decode call.
struct AbsorbedRun {
  size_t first = 0, last = 0;          // sequences [first, last) of the batch
  int64_t row_begin = 0, row_end = 0;  // their flat rows
  Tensor block_table;                  // [B, max_blocks] i32
  Tensor seq_lens;                     // [B] i32: context + new tokens
  Tensor query_start;                  // [B + 1] i32, relative to row_begin
  std::shared_ptr<const ops::MlaDecodePlan> plan;  // the step's split-KV plan, shared by the layers
  int64_t max_seq_len = 0;             // a bound on every sequence's length (host-known: picks kernels)
};

struct StepMetadata {
  const ForwardBatch* batch = nullptr;
  Tensor token_ids;                       // [T] i32
  Tensor logit_rows;                      // [R] i32: the rows whose logits are returned
  Tensor positions;                       // [T] i32
  Tensor slots;                           // [T] i64
  std::vector<AbsorbedRun> absorbed_runs;
  std::vector<Tensor> mha_block_tables;   // per sequence: [blocks] i32 (MHA-form sequences only)
  std::vector<bool> absorbed;             // per sequence

  // Whether some sequence takes the MHA form (a prefill chunk).
  bool has_mha_rows() const { return std::find(absorbed.begin(), absorbed.end(), false) != absorbed.end(); }
};

}  // namespace mlaserve
