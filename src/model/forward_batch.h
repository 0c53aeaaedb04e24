// ForwardBatch: one step's flat batch for DeepSeekModel::forward. The scheduler (or a simple
// generation loop) decides which tokens run; the model only follows this description.
//
// T new tokens of B sequences, flattened in sequence order. Sequence b owns rows
// [query_start, query_start + query_len) and has context_len tokens already in the cache;
// its new tokens sit at positions context_len .. context_len + query_len - 1 and are written to
// the cache slots slot_mapping[row] before attention runs. block_table lists the sequence's
// cache blocks in order (enough for context_len + query_len tokens).
#pragma once

#include <cstdint>
#include <vector>

namespace mlaserve {

struct SequenceSlice {
  int32_t query_start = 0;           // first row of this sequence in the flat batch
  int32_t query_len = 0;             // new tokens this step (1 for plain decode)
  int32_t context_len = 0;           // tokens cached before this step
  std::vector<int32_t> block_table;  // cache block ids, in order
};

struct ForwardBatch {
  std::vector<int32_t> token_ids;     // [T]
  std::vector<int32_t> positions;     // [T]
  std::vector<int64_t> slot_mapping;  // [T] block_id * 64 + row of each new token
  std::vector<SequenceSlice> sequences;
  std::vector<int32_t> logit_rows;    // flat rows whose logits are computed (sampled rows)

  int64_t num_tokens() const { return static_cast<int64_t>(token_ids.size()); }
};

}  // namespace mlaserve
