// ModelRunner: the boundary between the engine (requests, scheduling, sampling) and a model on
// a device. The engine describes each step as a ForwardBatch (flat tokens, positions, cache
// slots, per-sequence block tables, decode sequences first) and gets the logits of the rows
// that sample. Everything about how the step runs stays behind this boundary: the cache
// tensors and their layout (the latent cache today; an MHA-layout cache is another runner
// option), CUDA graphs for decode batches, and the device itself. The block ids in the batch
// index whatever cache the runner keeps; the engine only counts blocks.
//
// Two forms of one step:
//   execute(batch)         synchronous: the step runs, its logits come back.
//   submit(batch), wait()  asynchronous: submit queues a step and may return before it ran;
//                          wait() returns the logits of the oldest step submitted and not yet
//                          waited for (steps complete in submission order). At most
//                          max_in_flight() steps may be submitted and not waited for. A runner
//                          whose model is a pipeline of stages keeps one step per stage in
//                          flight (dist/distributed_runner.h), so that the engine schedules
//                          step n + 1 from other sequences while step n is still running.
// A synchronous runner keeps the defaults: max_in_flight() = 1, submit() runs execute() and
// wait() hands its logits back. The engine only uses submit/wait; execute is for callers that
// run one step at a time.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "core/error.h"
#include "core/stream.h"
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

  // Steps that may be submitted and not yet waited for (>= 1).
  virtual int max_in_flight() const { return 1; }
  // The stream the engine samples the logits of wait() on (they are ready for it: written before
  // it in that stream, or already complete): the legacy default stream unless the runner says
  // otherwise.
  virtual Stream sampling_stream() const { return {}; }
  // Queues one step (the batch is copied or used at once: the caller may drop it). Throws
  // mlaserve::Error when the step cannot be queued; nothing is then in flight for it.
  virtual void submit(const ForwardBatch& batch) {
    MLA_CHECK(done_.empty(), "model runner: a step submitted before the last one was waited for");
    done_.push_back(execute(batch));
  }
  // The oldest in-flight step's logits, as execute() returns them. Throws mlaserve::Error when
  // that step failed; it is then no longer in flight.
  virtual Tensor wait() {
    MLA_CHECK(!done_.empty(), "model runner: wait() without a step in flight");
    Tensor logits = std::move(done_.front());
    done_.pop_front();
    return logits;
  }

 private:
  std::deque<Tensor> done_;  // the synchronous default: executed at submit, handed out by wait
};

}  // namespace mlaserve
