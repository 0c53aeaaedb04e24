#include "dist/step_runner.h"

#include "dist/micro_batch.h"

namespace mlaserve::dist {

Tensor run_step(DeepSeekModel& model, LatentCache& cache, const ForwardBatch& batch, const StepGroups& g) {
  const ParallelConfig& pc = g.parallel;
  if (pc.pp_size == 1) {
    Tensor logits = model.forward(batch, cache);
    return pc.rank == 0 ? logits : Tensor();
  }
  const std::vector<ForwardBatch> parts = split_micro_batches(batch, g.micro_batches);
  const bool last = pc.pp_rank() == pc.pp_size - 1;
  const int64_t rows = static_cast<int64_t>(batch.logit_rows.size()), vocab = model.config().vocab_size;
  const Device device = model.weights().embed.device();
  Tensor logits;
  if ((last && pc.tp_rank() == 0) || pc.rank == 0) logits = Tensor::empty({rows, vocab}, DType::kF32, device);
  int64_t row = 0;
  for (const ForwardBatch& part : parts) {
    Tensor out = model.forward(part, cache);
    if (!last || pc.tp_rank() != 0) continue;
    copy_bytes(logits.slice(row, row + out.dim(0)).raw(), device, out.raw(), device, out.nbytes());
    row += out.dim(0);
  }
  const int sender = pc.rank_of(pc.pp_size - 1, 0);
  if (pc.rank == sender) g.world->send(logits, 0, {});
  if (pc.rank == 0) {
    g.world->recv(logits, sender, {});
    return logits;
  }
  return Tensor();
}

}  // namespace mlaserve::dist
