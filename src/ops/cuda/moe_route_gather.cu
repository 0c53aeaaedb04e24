// moe_route_and_gather and moe_router_route_and_gather on the GPU: argument checks and launches.
// The design note and the kernels are in moe_route_gather.cuh.
#include "ops/cuda/moe_route_gather.cuh"

#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/linear_gemv.h"
#include "ops/cuda/moe_grouping_checks.h"
#include "ops/linear.h"
#include "ops/moe_route_gather.h"

namespace mlaserve::ops {
namespace {

// The one-kernel path's parameters, after every check of the op; false when it does not apply
// (more than kRouteGatherMaxPairs pairs; with a gather, H not a multiple of 8 or unaligned rows):
// then the caller runs moe_route_cuda and moe_group_and_gather_cuda (or moe_group_by_expert_cuda).
bool route_gather_params(std::string_view op, const Tensor& logits, const Tensor& correction_bias,
                         const RouterParams& params, const Tensor& x, MoeRouteGatherOutputs& out,
                         gpu::MoeRouteGatherParams& p) {
  const std::string_view kOp = op;
  const gpu::MoeRouteParams route = gpu::moe_route_params(kOp, logits, correction_bias, params, out.route);
  const int64_t t = route.tokens, e = route.experts, pairs = t * route.top_k;
  const bool gather = out.gathered.defined();
  gpu::check_dtype(kOp, "x", x, DType::kBF16);
  MLA_CHECK(x.ndim() == 2 && x.dim(0) == t, "{}: x {} must be [T, H] for logits {}", kOp, shape_str(x.shape()),
            shape_str(logits.shape()));
  const int64_t h = x.dim(1);
  if (gather) {
    gpu::check_dtype(kOp, "gathered", out.gathered, DType::kBF16);
    gpu::check_shape(kOp, "gathered", out.gathered, {pairs, h});
  }
  if (pairs > gpu::kRouteGatherMaxPairs ||
      (gather && (h % 8 != 0 || !gpu::aligned16(x) || !gpu::aligned16(out.gathered)))) {
    return false;
  }
  MoeGrouping& g = out.grouping;
  gpu::check_grouping(kOp, g, e, pairs);
  p = gpu::MoeRouteGatherParams{route,
                                gpu::ptr<int32_t>(g.expert_offsets),
                                gpu::ptr<int32_t>(g.sorted_pairs),
                                gpu::ptr<int32_t>(g.sorted_tokens),
                                gather ? gpu::ptr<const __nv_bfloat16>(x) : nullptr,
                                gather ? gpu::ptr<__nv_bfloat16>(out.gathered) : nullptr,
                                gather ? h : 0};
  return true;
}

void route_then_gather(const Tensor& logits, const Tensor& correction_bias, const RouterParams& params,
                       const Tensor& x, MoeRouteGatherOutputs& out, cudaStream_t stream) {
  moe_route_cuda(logits, correction_bias, params, out.route, stream);
  if (!out.gathered.defined()) return moe_group_by_expert_cuda(out.route.expert_ids, logits.dim(1), out.grouping, stream);
  moe_group_and_gather_cuda(out.route.expert_ids, logits.dim(1), x, out.grouping, out.gathered, stream);
}

// The router's GEMV and the routing as one cluster (moe_router_route_gather_cluster_kernel) with
// programmatic launch; false, launching nothing, where the GEMV's `ctas` CTAs (<=
// kRouterClusterMaxCtas) do not make a cluster this GPU holds (asked once per device: cluster size
// 16 is non-portable; a GPU that refuses it refuses the kernel).
template <int kT, int kUnroll>
bool launch_router_cluster(const gpu::GemvParams<float>& g, const gpu::MoeRouteGatherParams& p, unsigned ctas,
                           cudaStream_t stream) {
  auto* kernel = gpu::moe_router_route_gather_cluster_kernel<kT, kUnroll>;
  static gpu::PerDeviceInts holds{};  // this instance: 1 if the GPU holds a cluster of kRouterClusterMaxCtas
  const bool fits = gpu::cached_per_device(holds, gpu::current_device(), "router cluster", [&](int) {
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    constexpr unsigned kMax = gpu::kRouterClusterMaxCtas;
    cudaLaunchAttribute attrs[2];
    const gpu::LaunchShape shape{dim3(kMax), dim3(gpu::kGemvThreads), 0, kMax, /*programmatic=*/false};
    const cudaLaunchConfig_t ask = gpu::launch_config(shape, nullptr, attrs);
    int clusters = 0;
    if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &ask) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return clusters >= 1 ? 1 : 0;
  });
  if (!fits) return false;
  gpu::launch_with_shape(kernel, {dim3(ctas), dim3(gpu::kGemvThreads), 0, ctas}, stream, g, p);
  return true;
}

// Whether the fused kernel leaves the routing by groups to the two ops (moe_route_cuda, then the
// grouping) after the router's GEMV: past kFusedGroupRouteMaxTokens tokens (moe_route_gather.cuh).
bool spreads_group_routing(const gpu::MoeRouteParams& r) {
  return gpu::group_routing_applies(r, gpu::kGemvWarps) && r.tokens > gpu::kFusedGroupRouteMaxTokens;
}

// The one-CTA kernel on the routing's parameters (route_gather_params).
void launch_route_gather(const gpu::MoeRouteGatherParams& p, cudaStream_t stream) {
  if (p.route.tokens == 0) return;
  gpu::launch_programmatic(gpu::moe_route_gather_kernel, 1, gpu::kRouteGatherThreads, 0, stream, p);
}

}  // namespace

void moe_route_and_gather_cuda(const Tensor& logits, const Tensor& correction_bias, const RouterParams& params,
                               const Tensor& x, MoeRouteGatherOutputs& out, cudaStream_t stream) {
  gpu::MoeRouteGatherParams p;
  if (!route_gather_params("moe_route_and_gather_cuda", logits, correction_bias, params, x, out, p)) {
    return route_then_gather(logits, correction_bias, params, x, out, stream);  // larger batches: the two ops
  }
  launch_route_gather(p, stream);
}

void moe_router_route_and_gather_cuda(const Tensor& x, const Tensor& router_weight, const Tensor& correction_bias,
                                      const RouterParams& params, Tensor& logits, Tensor& arrivals,
                                      MoeRouteGatherOutputs& out, cudaStream_t stream) {
  constexpr std::string_view kOp = "moe_router_route_and_gather_cuda";
  MLA_CHECK(x.ndim() == 2 && router_weight.ndim() == 2 && x.dim(1) == router_weight.dim(1),
            "{}: x {} must be [T, H] and router_weight {} [E, H]", kOp, shape_str(x.shape()),
            shape_str(router_weight.shape()));
  gpu::check_dtype(kOp, "logits", logits, DType::kF32);
  gpu::check_shape(kOp, "logits", logits, {x.dim(0), router_weight.dim(0)});
  gpu::check_dtype(kOp, "arrivals", arrivals, DType::kI32);
  gpu::check_shape(kOp, "arrivals", arrivals, {1});
  gpu::MoeRouteGatherParams p;
  const bool one_cta = route_gather_params(kOp, logits, correction_bias, params, x, out, p);
  const bool gemv = linear_gemv_applies(x, router_weight, logits);
  if (!one_cta || !gemv) {  // the router's GEMM, then the routing
    linear_cuda(x, router_weight, logits, stream);
    if (one_cta) return launch_route_gather(p, stream);
    return route_then_gather(logits, correction_bias, params, x, out, stream);
  }
  if (spreads_group_routing(p.route)) {  // the fused kernel's GEMV (its bits), then the two ops
    linear_gemv_cuda(x, router_weight, logits, stream, GemvKernel::kCudaCore);
    return route_then_gather(logits, correction_bias, params, x, out, stream);
  }
  const gpu::GemvParams<float> g{gpu::ptr<const __nv_bfloat16>(x), gpu::ptr<const __nv_bfloat16>(router_weight),
                                 gpu::ptr<float>(logits), static_cast<int32_t>(x.dim(0)),
                                 static_cast<int32_t>(router_weight.dim(0)), static_cast<int32_t>(x.dim(1))};
  const dim3 grid(static_cast<unsigned>((int64_t{g.n} + gpu::kGemvRows - 1) / gpu::kGemvRows));
  gpu::gemv_dispatch(g.t, g.k, [&](auto kt, auto unroll) {
    constexpr int kT = decltype(kt)::value, kUnroll = decltype(unroll)::value;
    if (grid.x <= gpu::kRouterClusterMaxCtas && launch_router_cluster<kT, kUnroll>(g, p, grid.x, stream)) return;
    gpu::launch_programmatic(gpu::moe_router_route_gather_kernel<kT, kUnroll>, grid, gpu::kGemvThreads, 0, stream, g,
                             p, gpu::ptr<int32_t>(arrivals));
  });
}

}  // namespace mlaserve::ops
