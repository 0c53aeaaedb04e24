// Device dispatch of mla_decode.h (see dispatch.h), and the per-step plan.
#include "ops/mla_decode.h"

#include "ops/cuda/mla_decode_sm90_heuristics.h"
#include "ops/dispatch.h"

namespace mlaserve::ops {

std::shared_ptr<const MlaDecodePlan> MlaDecodePlan::make(const Tensor& seq_lens, int64_t n_heads, int64_t max_q_len,
                                                         int64_t max_seq_len, Stream stream, bool kv_multicast) {
  auto plan = std::shared_ptr<MlaDecodePlan>(new MlaDecodePlan());
  if (!on_gpu(seq_lens)) return plan;
#ifdef MLASERVE_WITH_CUDA
  plan->schedule_ = std::make_unique<MlaDecodeSchedule>(mla_decode_schedule_create(seq_lens.dim(0), n_heads, max_q_len));
  plan->schedule_->kv_multicast = kv_multicast;
  mla_decode_schedule_update(*plan->schedule_, seq_lens, cuda_stream(stream), max_seq_len);
  return plan;
#else
  no_gpu_path("MlaDecodePlan::make");
#endif
}

MlaDecodePlan::~MlaDecodePlan() = default;

bool mla_decode_kernel_depends_on_length(int64_t num_seqs, int64_t rows_per_seq) {
  return sm90::use_partitioned_kernels(num_seqs, rows_per_seq, kMlaDecodeShortSeqLen) !=
         sm90::use_partitioned_kernels(num_seqs, rows_per_seq, kMlaDecodeShortSeqLen + 1);
}

void mla_decode(const MlaDecodeArgs& args, MlaDecodeOutputs& outputs, const MlaDecodePlan* plan, Stream stream) {
  if (!on_gpu(outputs.out)) return mla_decode_cpu(args, outputs);
#ifdef MLASERVE_WITH_CUDA
  if (plan != nullptr && plan->schedule() != nullptr) {
    return mla_decode_cuda(args, outputs, *plan->schedule(), cuda_stream(stream));
  }
  return mla_decode_cuda(args, outputs, cuda_stream(stream));
#else
  no_gpu_path("mla_decode");
#endif
}

}  // namespace mlaserve::ops
