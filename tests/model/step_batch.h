// One step of several sequences as the engine lays it out (model/forward_batch.h), for tests that
// drive a model directly: sequence s runs its tokens from done[s] on, owns cache blocks
// [s * blocks_per_seq, (s + 1) * blocks_per_seq), and samples its last token.
#pragma once

#include <cstdint>
#include <vector>

#include "kv/latent_cache.h"
#include "model/forward_batch.h"

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

}  // namespace mlaserve::testing
