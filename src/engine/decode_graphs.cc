#include "engine/decode_graphs.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/logging.h"
#include "model/step_metadata.h"

#include <cuda_runtime_api.h>

#include "core/cuda_check.h"

namespace mlaserve {

// Sizes above 256 step by 64.
int64_t padded_graph_batch(int64_t batch_size, int64_t max_batch) {
  static constexpr std::array<int64_t, 17> kSizes = {1, 2, 4, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256};
  MLA_CHECK(batch_size >= 1 && batch_size <= max_batch, "padded_graph_batch: batch {} outside [1, {}]", batch_size,
            max_batch);
  int64_t padded = (batch_size + 63) / 64 * 64;
  for (int64_t s : kSizes) {
    if (s >= batch_size) {
      padded = s;
      break;
    }
  }
  return std::min(padded, max_batch);
}

namespace {

cudaStream_t as_cuda(void* s) { return static_cast<cudaStream_t>(s); }

}  // namespace

// The graph of one padded size G and its input tensors. W = max_blocks_ (block-table width).
struct DecodeGraphs::Graph {
  int64_t size = 0;
  int64_t seq_len_class = 0;  // DeepSeekModel::decode_seq_len_class of the steps it runs
  Tensor ints;         // [3G] i32: token ids | positions | sequence lengths
  Tensor slots;        // [G] i64
  Tensor block_table;  // [G, W] i32
  Tensor query_start;  // [G + 1] i32: 0, 1, ..., G (fixed)
  Tensor logit_rows;   // [G] i32: 0, ..., G - 1 (fixed)
  int32_t* host_ints = nullptr;   // pinned staging of ints, [3G]
  int64_t* host_slots = nullptr;  // [G]
  int32_t* host_table = nullptr;  // [G, W]
  cudaEvent_t copied = nullptr;   // the last upload has read the staging
  ForwardBatch shape;             // G sequences of one token: the structure run_step follows
  StepMetadata meta;
  cudaGraphExec_t exec = nullptr;
  Tensor logits;                  // [G, V] f32, the graph's output (in the pool)

  ~Graph() {
    if (exec != nullptr) cudaGraphExecDestroy(exec);
    if (copied != nullptr) cudaEventDestroy(copied);
    cudaFreeHost(host_ints);
    cudaFreeHost(host_slots);
    cudaFreeHost(host_table);
  }
};

DecodeGraphs::DecodeGraphs(DeepSeekModel& model, LatentCache& cache, int64_t max_batch, int64_t max_context)
    : model_(model),
      cache_(cache),
      max_batch_(max_batch),
      max_blocks_((max_context + kCacheBlockSize - 1) / kCacheBlockSize),
      pool_(new_device_pool()) {
  MLA_CHECK(decode_graphs_supported(model), "DecodeGraphs: the model is on the CPU or caches MHA rows");
  MLA_CHECK(cache.num_blocks() >= 1, "DecodeGraphs: the cache has no blocks");
  MLA_CHECK(max_batch >= 1 && max_context >= 1, "DecodeGraphs: max_batch {} and max_context {} must be positive",
            max_batch, max_context);
  stream_ = model.stream().cuda;
  if (stream_ == nullptr) {  // the legacy default stream cannot be captured: the model gets one of its own
    cudaStream_t s = nullptr;
    MLA_CUDA_CHECK(cudaStreamCreate(&s));  // blocking: the legacy default stream still orders after it
    stream_ = s;
    model.set_stream(Stream{s});
  }
  model.reserve_positions(max_context);
}

DecodeGraphs::~DecodeGraphs() { graphs_.clear(); }

bool DecodeGraphs::accepts(const ForwardBatch& batch) const {
  if (disabled_ || model_.profiling() || model_.stage_clock_on()) return false;  // timed forwards run eagerly
  return fits(batch);
}

int64_t DecodeGraphs::graph_size(const ForwardBatch& batch) const {
  return accepts(batch) ? padded_graph_batch(batch.num_tokens(), max_batch_) : 0;
}

bool DecodeGraphs::fits(const ForwardBatch& batch) const {
  const auto b = static_cast<int64_t>(batch.sequences.size());
  if (b == 0 || b > max_batch_ || batch.num_tokens() != b || static_cast<int64_t>(batch.logit_rows.size()) != b) {
    return false;
  }
  for (int64_t i = 0; i < b; ++i) {
    const SequenceSlice& s = batch.sequences[static_cast<size_t>(i)];
    if (s.query_len != 1 || batch.logit_rows[static_cast<size_t>(i)] != i ||
        static_cast<int64_t>(s.block_table.size()) > max_blocks_) {
      return false;
    }
  }
  return true;
}

int64_t DecodeGraphs::seq_len_class(const ForwardBatch& batch, int64_t size) const {
  int64_t longest = 0;
  for (const SequenceSlice& s : batch.sequences) longest = std::max<int64_t>(longest, s.context_len + s.query_len);
  return model_.decode_seq_len_class(longest, size);
}

DecodeGraphs::Graph& DecodeGraphs::graph_for(int64_t g, int64_t seq_len_class) {
  std::unique_ptr<Graph>& slot = graphs_[{g, seq_len_class}];
  if (slot) return *slot;
  auto graph = std::make_unique<Graph>();
  graph->size = g;
  graph->seq_len_class = seq_len_class;
  graph->ints = Tensor::empty({3 * g}, DType::kI32, Device::kCUDA);
  graph->slots = Tensor::empty({g}, DType::kI64, Device::kCUDA);
  graph->block_table = Tensor::empty({g, max_blocks_}, DType::kI32, Device::kCUDA);
  Tensor starts = Tensor::empty({g + 1}, DType::kI32);
  for (int64_t i = 0; i <= g; ++i) starts.data<int32_t>()[i] = static_cast<int32_t>(i);
  graph->query_start = starts.to(Device::kCUDA);
  graph->logit_rows = starts.slice(0, g).to(Device::kCUDA);
  MLA_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&graph->host_ints), static_cast<size_t>(3 * g) * sizeof(int32_t)));
  MLA_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&graph->host_slots), static_cast<size_t>(g) * sizeof(int64_t)));
  MLA_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&graph->host_table), static_cast<size_t>(g * max_blocks_) * sizeof(int32_t)));
  MLA_CUDA_CHECK(cudaEventCreateWithFlags(&graph->copied, cudaEventDisableTiming));

  graph->shape.token_ids.assign(static_cast<size_t>(g), 0);
  for (int64_t i = 0; i < g; ++i) graph->shape.sequences.push_back({static_cast<int32_t>(i), 1, 0, {}});
  StepMetadata& m = graph->meta;
  m.batch = &graph->shape;
  m.token_ids = graph->ints.slice(0, g);
  m.positions = graph->ints.slice(g, 2 * g);
  m.slots = graph->slots;
  m.logit_rows = graph->logit_rows;
  m.absorbed.assign(static_cast<size_t>(g), true);
  m.mha_block_tables.resize(static_cast<size_t>(g));
  AbsorbedRun run{0, static_cast<size_t>(g), 0, g, graph->block_table, graph->ints.slice(2 * g, 3 * g),
                  graph->query_start, nullptr, seq_len_class};
  m.absorbed_runs.push_back(std::move(run));
  slot = std::move(graph);
  return *slot;
}

void DecodeGraphs::upload(Graph& g, const ForwardBatch& batch) {
  const int64_t b = batch.num_tokens(), n = g.size;
  MLA_CUDA_CHECK(cudaEventSynchronize(g.copied));  // the previous upload has read the staging
  int64_t width = 1;  // block-table columns in use
  for (int64_t i = 0; i < n; ++i) {
    const bool real = i < b;
    const SequenceSlice* s = real ? &batch.sequences[static_cast<size_t>(i)] : nullptr;
    g.host_ints[i] = real ? batch.token_ids[static_cast<size_t>(i)] : 0;
    g.host_ints[n + i] = real ? batch.positions[static_cast<size_t>(i)] : 0;
    g.host_ints[2 * n + i] = real ? s->context_len + 1 : 1;
    g.host_slots[i] = real ? batch.slot_mapping[static_cast<size_t>(i)] : -1;  // padding: not written
    int32_t* row = g.host_table + i * max_blocks_;
    if (real) {
      std::copy(s->block_table.begin(), s->block_table.end(), row);
      width = std::max<int64_t>(width, static_cast<int64_t>(s->block_table.size()));
    } else {
      row[0] = 0;  // padding reads one row of block 0; its output is dropped
    }
  }
  const cudaStream_t stream = as_cuda(stream_);
  MLA_CUDA_CHECK(cudaMemcpyAsync(g.ints.raw(), g.host_ints, static_cast<size_t>(3 * n) * sizeof(int32_t),
                                 cudaMemcpyHostToDevice, stream));
  MLA_CUDA_CHECK(cudaMemcpyAsync(g.slots.raw(), g.host_slots, static_cast<size_t>(n) * sizeof(int64_t),
                                 cudaMemcpyHostToDevice, stream));
  const size_t pitch = static_cast<size_t>(max_blocks_) * sizeof(int32_t);
  MLA_CUDA_CHECK(cudaMemcpy2DAsync(g.block_table.raw(), pitch, g.host_table, pitch,
                                   static_cast<size_t>(width) * sizeof(int32_t), static_cast<size_t>(n),
                                   cudaMemcpyHostToDevice, stream));
  MLA_CUDA_CHECK(cudaEventRecord(g.copied, stream));
}

Tensor DecodeGraphs::capture(Graph& g) {
  const cudaStream_t stream = as_cuda(stream_);
  AbsorbedRun& run = g.meta.absorbed_runs.front();
  // The eager step: the real step's work, and every lazily created workspace, outside the capture.
  run.plan = ops::MlaDecodePlan::make(run.seq_lens, model_.num_local_heads(), 1, run.max_seq_len, Stream{stream_},
                                      model_.mla_kv_multicast());
  Tensor logits = model_.run_step(g.meta, cache_);
  MLA_CUDA_CHECK(cudaStreamSynchronize(stream));

  DevicePoolScope pool(pool_);
  MLA_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
  cudaGraph_t graph = nullptr;
  try {
    run.plan = ops::MlaDecodePlan::make(run.seq_lens, model_.num_local_heads(), 1, run.max_seq_len, Stream{stream_},
                                        model_.mla_kv_multicast());
    g.logits = model_.run_step(g.meta, cache_);
  } catch (...) {
    cudaStreamEndCapture(stream, &graph);  // leaves the stream usable
    if (graph != nullptr) cudaGraphDestroy(graph);
    throw;
  }
  MLA_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  const cudaError_t err = cudaGraphInstantiate(&g.exec, graph, 0);
  cudaGraphDestroy(graph);
  MLA_CUDA_CHECK(err);
  if (g.seq_len_class == std::numeric_limits<int64_t>::max()) {  // the class of every length
    MLA_LOG_INFO("captured the CUDA graph of decode batch {} (sequences of any length)", g.size);
  } else {
    MLA_LOG_INFO("captured the CUDA graph of decode batch {} (sequences up to {} tokens)", g.size, g.seq_len_class);
  }
  return logits;
}

Tensor DecodeGraphs::replay(Graph& g) {
  MLA_CUDA_CHECK(cudaGraphLaunch(g.exec, as_cuda(stream_)));
  return g.logits;
}

Tensor DecodeGraphs::run(const ForwardBatch& batch) {
  MLA_CHECK(accepts(batch), "DecodeGraphs::run: not a decode step a graph can run");
  const int64_t size = padded_graph_batch(batch.num_tokens(), max_batch_);
  Graph& g = graph_for(size, seq_len_class(batch, size));
  upload(g, batch);
  Tensor logits;
  if (g.exec == nullptr) {
    try {
      logits = capture(g);
    } catch (const std::exception& e) {
      MLA_LOG_WARN("CUDA graph capture of decode batch {} failed, running eagerly from now on: {}", g.size, e.what());
      disabled_ = true;
      (void)cudaGetLastError();
      graphs_.erase({g.size, g.seq_len_class});
      return model_.forward(batch, cache_);
    }
  } else {
    logits = replay(g);
  }
  return logits.slice(0, batch.num_tokens());
}

Tensor DecodeGraphs::run(const ForwardBatch& batch, int64_t size) {
  MLA_CHECK(fits(batch) && size == padded_graph_batch(batch.num_tokens(), max_batch_),
            "DecodeGraphs::run: a step of {} tokens cannot run in the graph of {} sequences", batch.num_tokens(), size);
  Graph& g = graph_for(size, seq_len_class(batch, size));
  upload(g, batch);
  const Tensor logits = g.exec == nullptr ? capture(g) : replay(g);
  return logits.defined() ? logits.slice(0, batch.num_tokens()) : Tensor();  // none before the last stage
}

bool decode_graphs_supported(const DeepSeekModel& model) {
  return model.weights().embed.device() == Device::kCUDA &&
         model.cache_row_dim() == model.config().kv_cache_dim;  // the latent layout
}

int64_t decode_graph_max_context(const DeepSeekModel& model, int32_t num_cache_blocks) {
  return std::min<int64_t>(model.config().max_position_embeddings, int64_t{num_cache_blocks} * kCacheBlockSize);
}

}  // namespace mlaserve
