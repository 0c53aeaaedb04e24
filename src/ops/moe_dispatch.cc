// Device dispatch of moe_dispatch.h (see dispatch.h).
#include "ops/moe_dispatch.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void moe_group_by_expert(const Tensor& expert_ids, int64_t num_experts, MoeGrouping& grouping, Stream stream) {
  if (!on_gpu(grouping.expert_offsets)) return moe_group_by_expert_cpu(expert_ids, num_experts, grouping);
#ifdef MLASERVE_WITH_CUDA
  moe_group_by_expert_cuda(expert_ids, num_experts, grouping, cuda_stream(stream));
#else
  no_gpu_path("moe_group_by_expert");
#endif
}

void moe_group_and_gather(const Tensor& expert_ids, int64_t num_experts, const Tensor& x, MoeGrouping& grouping,
                          Tensor& gathered, Stream stream) {
  if (!on_gpu(gathered)) return moe_group_and_gather_cpu(expert_ids, num_experts, x, grouping, gathered);
#ifdef MLASERVE_WITH_CUDA
  moe_group_and_gather_cuda(expert_ids, num_experts, x, grouping, gathered, cuda_stream(stream));
#else
  no_gpu_path("moe_group_and_gather");
#endif
}

void moe_combine(const Tensor& expert_out, const Tensor& sorted_pairs, const Tensor& weights, Tensor& y,
                 Stream stream, const MoeCombineScope& scope) {
  if (!on_gpu(y)) return moe_combine_cpu(expert_out, sorted_pairs, weights, y, scope);
#ifdef MLASERVE_WITH_CUDA
  moe_combine_cuda(expert_out, sorted_pairs, weights, y, cuda_stream(stream), scope);
#else
  no_gpu_path("moe_combine");
#endif
}

}  // namespace mlaserve::ops
