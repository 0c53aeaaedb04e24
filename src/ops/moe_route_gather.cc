// Device dispatch of moe_route_gather.h (see dispatch.h), and its CPU references: the ops they
// fuse, in sequence.
#include "ops/moe_route_gather.h"

#include "ops/dispatch.h"
#include "ops/linear.h"

namespace mlaserve::ops {

void moe_route_and_gather_cpu(const Tensor& logits, const Tensor& correction_bias, const RouterParams& params,
                              const Tensor& x, MoeRouteGatherOutputs& out) {
  moe_route_cpu(logits, correction_bias, params, out.route);
  if (!out.gathered.defined()) return moe_group_by_expert_cpu(out.route.expert_ids, logits.dim(1), out.grouping);
  moe_group_and_gather_cpu(out.route.expert_ids, logits.dim(1), x, out.grouping, out.gathered);
}

void moe_router_route_and_gather_cpu(const Tensor& x, const Tensor& router_weight, const Tensor& correction_bias,
                                     const RouterParams& params, Tensor& logits, MoeRouteGatherOutputs& out) {
  linear_cpu(x, router_weight, logits);
  moe_route_and_gather_cpu(logits, correction_bias, params, x, out);
}

void moe_route_and_gather(const Tensor& logits, const Tensor& correction_bias, const RouterParams& params,
                          const Tensor& x, MoeRouteGatherOutputs& out, Stream stream) {
  if (!on_gpu(out.route.weights)) return moe_route_and_gather_cpu(logits, correction_bias, params, x, out);
#ifdef MLASERVE_WITH_CUDA
  moe_route_and_gather_cuda(logits, correction_bias, params, x, out, cuda_stream(stream));
#else
  no_gpu_path("moe_route_and_gather");
#endif
}

void moe_router_route_and_gather(const Tensor& x, const Tensor& router_weight, const Tensor& correction_bias,
                                 const RouterParams& params, Tensor& logits, Tensor& arrivals,
                                 MoeRouteGatherOutputs& out, Stream stream) {
  if (!on_gpu(out.route.weights)) {
    return moe_router_route_and_gather_cpu(x, router_weight, correction_bias, params, logits, out);
  }
#ifdef MLASERVE_WITH_CUDA
  moe_router_route_and_gather_cuda(x, router_weight, correction_bias, params, logits, arrivals, out,
                                   cuda_stream(stream));
#else
  no_gpu_path("moe_router_route_and_gather");
#endif
}

}  // namespace mlaserve::ops
