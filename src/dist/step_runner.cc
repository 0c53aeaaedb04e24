#include "dist/step_runner.h"

#include "core/error.h"
#include "dist/micro_batch.h"
#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.h"
#include "engine/decode_graphs.h"
#endif

namespace mlaserve::dist {

int logits_sender(const ParallelConfig& pc) { return pc.rank_of(pc.pp_size - 1, 0); }

int pipeline_steps_in_flight(const ParallelConfig& pc, int requested) {
  if (pc.pp_size == 1) return 1;
  return requested > 0 ? requested : pc.pp_size;
}

namespace {

// The share as the replay of a decode graph; the last stage's logits copied out of the graph.
Tensor replay_share(DeepSeekModel& model, const ForwardBatch& batch, DecodeGraphs* graphs, int64_t graph_batch) {
#ifdef MLASERVE_WITH_CUDA
  MLA_CHECK(graphs != nullptr, "run_share: rank 0 runs the step as a graph of {} sequences, this rank has no graphs",
            graph_batch);
  const Tensor out = graphs->run(batch, graph_batch);
  if (!out.defined()) return out;
  Tensor logits = Tensor::empty(out.shape(), out.dtype(), out.device());
  MLA_CUDA_CHECK(cudaMemcpyAsync(logits.raw(), out.raw(), out.nbytes(), cudaMemcpyDeviceToDevice,
                                 static_cast<cudaStream_t>(model.stream().cuda)));
  return logits;
#else
  (void)model, (void)batch, (void)graphs;
  MLA_FAIL("run_share: a graph of {} sequences needs the CUDA backend", graph_batch);
#endif
}

}  // namespace

int64_t stage_graph_size(const DecodeGraphs* graphs, const ForwardBatch& batch) {
#ifdef MLASERVE_WITH_CUDA
  return graphs != nullptr ? graphs->graph_size(batch) : 0;
#else
  (void)graphs, (void)batch;
  return 0;
#endif
}

Tensor run_share(DeepSeekModel& model, LatentCache& cache, const ForwardBatch& batch, const StepGroups& g,
                 DecodeGraphs* graphs, int64_t graph_batch) {
  const ParallelConfig& pc = g.parallel;
  if (pc.pp_size == 1) return model.forward(batch, cache);
  const bool sends = pc.rank == logits_sender(pc);
  if (graph_batch > 0) {
    Tensor out = replay_share(model, batch, graphs, graph_batch);
    return sends ? out : Tensor();
  }
  const std::vector<ForwardBatch> parts = split_micro_batches(batch, g.micro_batches);
  if (parts.size() == 1) {
    Tensor out = model.forward(parts.front(), cache);
    return sends ? out : Tensor();
  }
  const int64_t rows = static_cast<int64_t>(batch.logit_rows.size()), vocab = model.config().vocab_size;
  const Device device = model.weights().embed.device();
  Tensor logits;
  if (sends) logits = Tensor::empty({rows, vocab}, DType::kF32, device);
  int64_t row = 0;
  for (const ForwardBatch& part : parts) {
    Tensor out = model.forward(part, cache);
    if (!sends) continue;
    copy_bytes(logits.slice(row, row + out.dim(0)).raw(), device, out.raw(), device, out.nbytes());
    row += out.dim(0);
  }
  return logits;
}

Tensor run_step(DeepSeekModel& model, LatentCache& cache, const ForwardBatch& batch, const StepGroups& g) {
  const ParallelConfig& pc = g.parallel;
  Tensor logits = run_share(model, cache, batch, g);
  if (pc.pp_size == 1) return pc.rank == 0 ? logits : Tensor();
  const int sender = logits_sender(pc);
  if (pc.rank == sender) g.world->send(logits, 0, model.stream());
  if (pc.rank != 0) return Tensor();
  logits = Tensor::empty({static_cast<int64_t>(batch.logit_rows.size()), model.config().vocab_size}, DType::kF32,
                         model.weights().embed.device());
  g.world->recv(logits, sender, model.stream());
  return logits;
}

}  // namespace mlaserve::dist
