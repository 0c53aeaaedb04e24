// Device dispatch of moe_experts.h (see dispatch.h).
#include "ops/moe_experts.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void moe_experts(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& weights, const ActQuantParams& act,
                 Tensor& out, Stream stream) {
  if (!on_gpu(out)) return moe_experts_cpu(x, expert_offsets, weights, act, out);
  no_gpu_path("moe_experts");
}

}  // namespace mlaserve::ops
