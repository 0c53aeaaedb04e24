// From the scheduler's chunks to the model's flat batch (model/forward_batch.h). Chunks of one
// token (sequences that are generating) go first, then longer ones (prompt chunks), each group
// in scheduling order: consecutive short sequences run the absorbed attention form in one call.
// Each chunk that samples contributes its last row to logit_rows, in batch order.
#pragma once

#include <cstddef>
#include <vector>

#include "engine/scheduler.h"
#include "model/forward_batch.h"

namespace mlaserve {

struct StepBatch {
  ForwardBatch batch;
  std::vector<size_t> sampled;  // per logits row: the index of its chunk in SchedulerOutput::chunks
};

StepBatch build_step_batch(const SchedulerOutput& out);

}  // namespace mlaserve
