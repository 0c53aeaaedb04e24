// ModelRunner: the boundary between the engine (requests, scheduling, sampling) and a model on
// a device. The engine describes each step as a ForwardBatch (flat tokens, positions, cache
// slots, per-sequence block tables, decode sequences first) and gets the logits of the rows
// that sample. Everything about how the step runs stays behind this boundary: the cache
// tensors and their layout (the latent cache today; an MHA-layout cache is another runner
// option), CUDA graphs for decode batches, and the device itself. The block ids in the batch
// index whatever cache the runner keeps; the engine only counts blocks.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "model/forward_batch.h"

namespace mlaserve {

struct ModelRunnerInfo {
  int64_t vocab_size = 0;
  int32_t num_cache_blocks = 0;        // 64-token blocks of the runner's cache
  int64_t max_position_embeddings = 0; // the model's longest sequence
  std::vector<int32_t> eos_token_ids;
};

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  virtual ModelRunnerInfo info() const = 0;
  // Runs one step: writes the rows of batch's tokens into the cache and returns the logits of
  // batch.logit_rows, [R, vocab] f32, on the host or on the GPU (queued on the legacy default
  // stream or one that synchronises with it: the engine's GPU argmax runs there). Throws
  // mlaserve::Error on failure.
  virtual Tensor execute(const ForwardBatch& batch) = 0;
};

}  // namespace mlaserve
