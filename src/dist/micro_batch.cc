#include "dist/micro_batch.h"

#include <algorithm>

#include "core/error.h"

namespace mlaserve::dist {

std::vector<ForwardBatch> split_micro_batches(const ForwardBatch& batch, int count) {
  MLA_CHECK(count >= 1, "{} micro-batches", count);
  const size_t nseq = batch.sequences.size();
  if (count == 1 || nseq <= 1) return {batch};
  MLA_CHECK(std::is_sorted(batch.logit_rows.begin(), batch.logit_rows.end()),
            "micro-batches need increasing logit rows");
  const int64_t total = batch.num_tokens();
  std::vector<ForwardBatch> out;
  size_t seq = 0, logit = 0;
  for (int m = 0; m < count && seq < nseq; ++m) {
    // Sequences until this micro-batch reaches its share of the tokens (at least one each).
    const int64_t target = total * (m + 1) / count;
    ForwardBatch mb;
    const int32_t row0 = batch.sequences[seq].query_start;
    while (seq < nseq && (mb.sequences.empty() || batch.sequences[seq].query_start < target || m == count - 1)) {
      SequenceSlice s = batch.sequences[seq++];
      s.query_start -= row0;
      mb.sequences.push_back(std::move(s));
    }
    const int32_t row1 = seq < nseq ? batch.sequences[seq].query_start : static_cast<int32_t>(total);
    mb.token_ids.assign(batch.token_ids.begin() + row0, batch.token_ids.begin() + row1);
    mb.positions.assign(batch.positions.begin() + row0, batch.positions.begin() + row1);
    mb.slot_mapping.assign(batch.slot_mapping.begin() + row0, batch.slot_mapping.begin() + row1);
    for (; logit < batch.logit_rows.size() && batch.logit_rows[logit] < row1; ++logit) {
      mb.logit_rows.push_back(batch.logit_rows[logit] - row0);
    }
    out.push_back(std::move(mb));
  }
  return out;
}

}  // namespace mlaserve::dist
