// One step of several sequences as the engine lays it out (model/forward_batch.h), for tests that
// drive a model directly: sequence s runs its tokens from done[s] on, owns cache blocks
// [s * blocks_per_seq, (s + 1) * blocks_per_seq), and samples its last token. And a run of such
// steps with given decode tokens (run_fixed_steps).
#pragma once

#include <cstdint>
#include <vector>

#include "kv/latent_cache.h"
#include "model/forward_batch.h"
#include "model/model.h"

namespace mlaserve::testing {

inline ForwardBatch step_batch(const std::vector<std::vector<int32_t>>& seqs, const std::vector<int32_t>& done,
                               int32_t blocks_per_seq) {
  ForwardBatch b;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const auto len = static_cast<int32_t>(seqs[s].size());
    SequenceSlice slice{static_cast<int32_t>(b.token_ids.size()), len - done[s], done[s], {}};
    for (int32_t k = 0; k < blocks_per_seq; ++k) slice.block_table.push_back(static_cast<int32_t>(s) * blocks_per_seq + k);
    for (int32_t p = done[s]; p < len; ++p) {
      b.token_ids.push_back(seqs[s][static_cast<size_t>(p)]);
      b.positions.push_back(p);
      b.slot_mapping.push_back(int64_t{slice.block_table[static_cast<size_t>(p / kCacheBlockSize)]} * kCacheBlockSize +
                               p % kCacheBlockSize);
    }
    b.sequences.push_back(slice);
    b.logit_rows.push_back(static_cast<int32_t>(b.token_ids.size()) - 1);
  }
  return b;
}

// The logits [R, V] (host) of a prefill of seqs and of one decode step per entry of tokens
// (decode token k of sequence s is tokens[k][s], whatever the logits say), each sequence owning
// blocks_per_seq cache blocks of a cache made here.
inline std::vector<Tensor> run_fixed_steps(DeepSeekModel& model, std::vector<std::vector<int32_t>> seqs,
                                           const std::vector<std::vector<int32_t>>& tokens, int32_t blocks_per_seq) {
  LatentCache cache = model.make_cache(static_cast<int64_t>(seqs.size()) * blocks_per_seq);
  std::vector<int32_t> done(seqs.size(), 0);
  std::vector<Tensor> logits;
  for (size_t k = 0; k <= tokens.size(); ++k) {
    logits.push_back(model.forward(step_batch(seqs, done, blocks_per_seq), cache).to(Device::kCPU));
    if (k == tokens.size()) break;
    for (size_t s = 0; s < seqs.size(); ++s) {
      done[s] = static_cast<int32_t>(seqs[s].size());
      seqs[s].push_back(tokens[k][s]);
    }
  }
  return logits;
}

}  // namespace mlaserve::testing
