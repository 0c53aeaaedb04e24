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
// sequence lengths. Where the model picks kernels by the step's longest sequence (a length class,
// DeepSeekModel::decode_seq_len_class), each class of a size has its own graph.
//
// On a rank of a split model the graph holds that rank's share with its NCCL operations captured
// into it: under tensor parallelism the all-reduces of the partial outputs and the gather of the
// vocabulary shards' logits; on a pipeline stage the receive of the residual stream from the stage
// before, the send to the stage after, and on the last stage the logits. Every rank must then run
// the step the same way, as the replay of the graph of the same size or eagerly, since the two move
// differently padded tensors: rank 0 decides (graph_size) and sends the size with the step
// (dist/step_message.h), and the other ranks follow it (run with a size). The step that captures a
// graph runs once, eagerly, and returns that run's logits, so that a rank exchanges each step's
// tensors exactly once whether it captures, replays or runs eagerly.
//
// Not used while the model profiles its regions (events cannot be timed inside a graph) or caches
// MHA rows (DeepSeekRunner takes graphs for the latent cache). A capture that fails turns graphs
// off with a warning; the step then runs eagerly, and so do the later ones (on one GPU; a rank of a
// split model fails the step instead, as its peers could not follow).
// CUDA builds only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>

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
  // The padded size of the graph that runs `batch`, 0 when it runs eagerly (not accepted).
  int64_t graph_size(const ForwardBatch& batch) const;
  // Runs an accepted batch; its logits [B, V] f32 on the GPU (valid until the next run).
  Tensor run(const ForwardBatch& batch);
  // Runs `batch` (B one-token sequences) in the graph of `size` sequences, as a pipeline stage
  // told the size by rank 0: the logits [B, V] on the last stage (valid until the next run), an
  // undefined tensor on the others. Fails, rather than running eagerly, when it cannot.
  Tensor run(const ForwardBatch& batch, int64_t size);

  int64_t num_captured() const { return static_cast<int64_t>(graphs_.size()); }

 private:
  struct Graph;
  bool fits(const ForwardBatch& batch) const;  // the shape a graph runs
  // The graph of `size` sequences for steps whose longest sequence falls in the model's length
  // class `seq_len_class` (DeepSeekModel::decode_seq_len_class: the kernels a step runs may depend
  // on it, and a graph is one fixed sequence of kernels).
  Graph& graph_for(int64_t size, int64_t seq_len_class);
  int64_t seq_len_class(const ForwardBatch& batch, int64_t size) const;  // in the graph of `size` sequences
  void upload(Graph& g, const ForwardBatch& batch);
  Tensor capture(Graph& g);  // the step's eager run (its logits), then the capture
  Tensor replay(Graph& g);   // the graph's launch; its logits

  DeepSeekModel& model_;
  LatentCache& cache_;
  const int64_t max_batch_;
  const int64_t max_blocks_;  // block-table width of every graph
  DevicePool* pool_ = nullptr;
  void* stream_ = nullptr;    // cudaStream_t of the model while graphs are on
  bool disabled_ = false;
  std::map<std::pair<int64_t, int64_t>, std::unique_ptr<Graph>> graphs_;  // by (padded size, length class)
};

// The padded batch sizes that get a graph (up to max_batch; the largest is max_batch itself).
int64_t padded_graph_batch(int64_t batch_size, int64_t max_batch);

// Whether DecodeGraphs can run `model`'s decode steps: weights on the GPU, the latent cache
// layout (the runners add their own conditions: options, parallel layouts).
bool decode_graphs_supported(const DeepSeekModel& model);

// The longest sequence the graphs of a cache of `num_cache_blocks` blocks must hold.
int64_t decode_graph_max_context(const DeepSeekModel& model, int32_t num_cache_blocks);

}  // namespace mlaserve
