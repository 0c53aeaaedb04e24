// moe_route_and_gather on the GPU: argument checks and launch. The design note and the kernel are
// in moe_route_gather.cuh.
#include "ops/cuda/moe_route_gather.cuh"

#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/moe_grouping_checks.h"
#include "ops/moe_route_gather.h"

namespace mlaserve::ops {

void moe_route_and_gather_cuda(const Tensor& logits, const Tensor& correction_bias, const RouterParams& params,
                               const Tensor& x, MoeRouteGatherOutputs& out, cudaStream_t stream) {
  constexpr std::string_view kOp = "moe_route_and_gather_cuda";
  const gpu::MoeRouteParams route = gpu::moe_route_params(kOp, logits, correction_bias, params, out.route);
  const int64_t t = route.tokens, e = route.experts, pairs = t * route.top_k;
  gpu::check_dtype(kOp, "x", x, DType::kBF16);
  gpu::check_dtype(kOp, "gathered", out.gathered, DType::kBF16);
  MLA_CHECK(x.ndim() == 2 && x.dim(0) == t, "{}: x {} must be [T, H] for logits {}", kOp, shape_str(x.shape()),
            shape_str(logits.shape()));
  const int64_t h = x.dim(1);
  gpu::check_shape(kOp, "gathered", out.gathered, {pairs, h});
  if (pairs > gpu::kRouteGatherMaxPairs || h % 8 != 0 || !gpu::aligned16(x) || !gpu::aligned16(out.gathered)) {
    moe_route_cuda(logits, correction_bias, params, out.route, stream);  // larger batches: the two ops
    moe_group_and_gather_cuda(out.route.expert_ids, e, x, out.grouping, out.gathered, stream);
    return;
  }
  MoeGrouping& g = out.grouping;
  gpu::check_grouping(kOp, g, e, pairs);
  if (t == 0) return;
  const gpu::MoeRouteGatherParams p{route,
                                    gpu::ptr<int32_t>(g.expert_offsets),
                                    gpu::ptr<int32_t>(g.sorted_pairs),
                                    gpu::ptr<int32_t>(g.sorted_tokens),
                                    gpu::ptr<const __nv_bfloat16>(x),
                                    gpu::ptr<__nv_bfloat16>(out.gathered),
                                    h};
  gpu::launch_programmatic(gpu::moe_route_gather_kernel, 1, gpu::kRouteGatherThreads, 0, stream, p);
}

}  // namespace mlaserve::ops
