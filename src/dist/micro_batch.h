// Micro-batches for pipeline parallelism: one step's ForwardBatch cut into consecutive groups
// of whole sequences, so that stage s runs micro-batch i + 1 while stage s + 1 runs i. Each
// micro-batch is a valid ForwardBatch of its own (rows and logit rows counted from 0); the
// logits of the micro-batches, concatenated in order, are the logits of the whole batch.
#pragma once

#include <vector>

#include "model/forward_batch.h"

namespace mlaserve::dist {

// At most `count` micro-batches of about equal token counts (never an empty one). The batch's
// logit rows must be increasing when count > 1 (the engine's are), so that the concatenated
// logits keep their order.
std::vector<ForwardBatch> split_micro_batches(const ForwardBatch& batch, int count);

}  // namespace mlaserve::dist
