#include "dist/step_runner.h"

#include "dist/micro_batch.h"

namespace mlaserve::dist {

int logits_sender(const ParallelConfig& pc) { return pc.rank_of(pc.pp_size - 1, 0); }

int pipeline_steps_in_flight(const ParallelConfig& pc, int requested) {
  if (pc.pp_size == 1) return 1;
  return requested > 0 ? requested : pc.pp_size;
}

Tensor run_share(DeepSeekModel& model, LatentCache& cache, const ForwardBatch& batch, const StepGroups& g) {
  const ParallelConfig& pc = g.parallel;
  if (pc.pp_size == 1) return model.forward(batch, cache);
  const std::vector<ForwardBatch> parts = split_micro_batches(batch, g.micro_batches);
  const bool sends = pc.rank == logits_sender(pc);
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
