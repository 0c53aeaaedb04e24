// DecodeGraphs: CUDA graphs of decode-only steps, so that a decode step of a DeepSeekModel on
// the GPU is one graph launch instead of ~30 kernel launches per layer (at batch 1 the step is
// bound by those launches, not by the GPU).
//
// A step qualifies when every sequence brings exactly one new token and there are at most
// max_batch of them. Its B sequences run in the graph of the next padded size G >= B
// (kGraphBatchSizes); the G - B padding rows are sequences of one token with cache slot -1
// (the cache write skips it, ops/latent_cache.h) that read block 0, and whose logits are dropped.
// The graph of size G is captured on the step that first needs it: the step runs eagerly once
// (which also creates cuBLASLt workspaces and other lazy state outside the capture), then
// DeepSeekModel::run_step is captured on the model's stream into a private memory pool
// (core/memory.h: the graph's intermediate tensors never alias memory used outside it) and
// replayed. Every later step of size G copies its metadata into the graph's input tensors
// (token ids, positions, cache slots, block tables, sequence lengths) and replays the graph;
// the split-KV plan of the absorbed attention is recomputed inside the graph from the new
// sequence lengths.
//
// Not used while the model profiles its regions (events cannot be timed inside a graph), is
// split across ranks, or caches MHA rows (DeepSeekRunner takes graphs for the latent cache). A capture that fails turns graphs off with a warning; the step then runs
// eagerly, and so do the later ones. CUDA builds only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "core/memory.h"
#include "core/tensor.h"
#include "kv/latent_cache.h"
#include "model/forward_batch.h"
#include "model/model.h"

namespace mlaserve {

class DecodeGraphs {
 public:
  // `max_context` bounds every sequence's length (it sizes the graphs' block tables).
  DecodeGraphs(DeepSeekModel& model, LatentCache& cache, int64_t max_batch, int64_t max_context);
  ~DecodeGraphs();
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;

  // Whether `batch` is a decode step that a graph runs.
  bool accepts(const ForwardBatch& batch) const;
  // Runs an accepted batch; its logits [B, V] f32 on the GPU (valid until the next run).
  Tensor run(const ForwardBatch& batch);

  int64_t num_captured() const { return static_cast<int64_t>(graphs_.size()); }

 private:
  struct Graph;
  Graph& graph_for(int64_t batch_size);
  void upload(Graph& g, const ForwardBatch& batch);
  void capture(Graph& g);

  DeepSeekModel& model_;
  LatentCache& cache_;
  const int64_t max_batch_;
  const int64_t max_blocks_;  // block-table width of every graph
  DevicePool* pool_ = nullptr;
  void* stream_ = nullptr;    // cudaStream_t of the model while graphs are on
  bool disabled_ = false;
  std::map<int64_t, std::unique_ptr<Graph>> graphs_;  // by padded size
};

// The padded batch sizes that get a graph (up to max_batch; the largest is max_batch itself).
int64_t padded_graph_batch(int64_t batch_size, int64_t max_batch);

}  // namespace mlaserve
