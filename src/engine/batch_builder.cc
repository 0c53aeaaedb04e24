#include "engine/batch_builder.h"

namespace mlaserve {

StepBatch build_step_batch(const SchedulerOutput& out) {
  std::vector<size_t> order;
  order.reserve(out.chunks.size());
  for (size_t i = 0; i < out.chunks.size(); ++i) {
    if (out.chunks[i].num_tokens == 1) order.push_back(i);
  }
  for (size_t i = 0; i < out.chunks.size(); ++i) {
    if (out.chunks[i].num_tokens != 1) order.push_back(i);
  }

  StepBatch step;
  ForwardBatch& b = step.batch;
  b.token_ids.reserve(static_cast<size_t>(out.num_tokens));
  b.positions.reserve(static_cast<size_t>(out.num_tokens));
  b.slot_mapping.reserve(static_cast<size_t>(out.num_tokens));
  for (size_t i : order) {
    const ScheduledChunk& c = out.chunks[i];
    const Sequence& seq = *c.seq;
    const auto start = static_cast<int32_t>(b.token_ids.size());
    for (int64_t p = c.context_len; p < c.context_len + c.num_tokens; ++p) {
      b.token_ids.push_back(seq.tokens[static_cast<size_t>(p)]);
      b.positions.push_back(static_cast<int32_t>(p));
      b.slot_mapping.push_back(seq.blocks.slot(p));
    }
    b.sequences.push_back(SequenceSlice{start, static_cast<int32_t>(c.num_tokens),
                                        static_cast<int32_t>(c.context_len), seq.blocks.blocks});
    if (c.samples) {
      b.logit_rows.push_back(static_cast<int32_t>(b.token_ids.size()) - 1);
      step.sampled.push_back(i);
    }
  }
  return step;
}

}  // namespace mlaserve
