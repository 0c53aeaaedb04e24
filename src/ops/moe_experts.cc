// Device dispatch of moe_experts.h (see dispatch.h).
#include "ops/moe_experts.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void moe_experts(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& weights, const ActQuantParams& act,
                 Tensor& hidden, Tensor& out, Stream stream) {
  if (!on_gpu(out)) return moe_experts_cpu(x, expert_offsets, weights, act, out);
#ifdef MLASERVE_WITH_CUDA
  if (weights.is_fp8()) return moe_experts_fp8_cuda(x, expert_offsets, weights, act, hidden, out, cuda_stream(stream));
  moe_experts_cuda(x, expert_offsets, weights, hidden, out, cuda_stream(stream));
#else
  no_gpu_path("moe_experts");
#endif
}

}  // namespace mlaserve::ops
