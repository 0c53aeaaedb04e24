// MoE router on the GPU: argument checks (shared with the fused moe_route_and_gather_cuda), the
// kernel over tokens and its launch. The design note and the per-token routing are in
// moe_router.cuh.
#include "ops/cuda/moe_router.cuh"

#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/moe_router.h"

namespace mlaserve::ops {
namespace {

// Where the routing does not go by groups (below): a token a warp (route_token). grid ceil(T /
// kRouterWarps), block kRouterThreads; launched with launch_programmatic.
__global__ void __launch_bounds__(gpu::kRouterThreads) moe_route_kernel(gpu::MoeRouteParams p) {
  __shared__ gpu::RouterWarpScratch scratch[gpu::kRouterWarps];
  gpu::grid_dependency_wait();  // the logits come from the kernel before
  gpu::launch_dependents();
  const int64_t warps = int64_t{gridDim.x} * gpu::kRouterWarps;
  for (int64_t t = blockIdx.x * int64_t{gpu::kRouterWarps} + threadIdx.x / 32; t < p.tokens; t += warps) {
    gpu::route_token(p, t, scratch[threadIdx.x / 32], threadIdx.x % 32);
    __syncwarp();  // the next token reuses the warp's scratch
  }
}

// Where the routing goes by groups (gpu::group_routing_applies: V3, R1): grid ceil(T / kPerCta),
// block kGroupRouteWarps warps; each CTA routes tokens [blockIdx.x kPerCta, + kPerCta) with
// route_tokens_by_groups (kPerCta <= kGroupRouteMaxTokens). What no kernel of the step writes is
// read before the wait: the bias (a weight), staged, and the row slots (the step's metadata), as
// the tokens' source rows. Launched with launch_programmatic.
template <int kPerCta>
__global__ void __launch_bounds__(32 * gpu::kGroupRouteWarps) moe_route_groups_kernel(gpu::MoeRouteParams p) {
  static_assert(kPerCta >= 1 && kPerCta <= gpu::kGroupRouteMaxTokens);
  __shared__ gpu::RouterWarpScratch scratch[kPerCta];  // a token's
  __shared__ gpu::RouterGroupPicks picks[kPerCta * gpu::kGroupRouteMaxGroups];
  __shared__ float bias[gpu::kRouterMaxExperts];
  __shared__ int64_t rows[kPerCta];
  const int64_t t0 = int64_t{blockIdx.x} * kPerCta;
  const int count = static_cast<int>(p.tokens - t0 < kPerCta ? p.tokens - t0 : kPerCta);
  gpu::stage_router_bias(p, bias);  // read after the __syncthreads below
  gpu::stage_source_rows(p, t0, count, rows);
  gpu::grid_dependency_wait();  // the logits come from the kernel before
  gpu::launch_dependents();
  __syncthreads();
  gpu::route_tokens_by_groups<gpu::kGroupRouteWarps, gpu::group_route_tasks(kPerCta, gpu::kGroupRouteWarps)>(
      p, t0, count, rows, scratch, picks, nullptr);
}

// Tokens a CTA of moe_route_groups_kernel routes: one up to kGroupRouteOneTokenMax tokens (a decode
// step's: the routing's latency is the step's), kGroupRouteMaxTokens above (prefill: fewer CTAs).
constexpr int64_t kGroupRouteOneTokenMax = 512;

}  // namespace

gpu::MoeRouteParams gpu::moe_route_params(std::string_view op, const Tensor& logits, const Tensor& correction_bias,
                                          const RouterParams& params, RouterOutputs& outputs) {
  const std::string_view kOp = op;
  gpu::check_dtype(kOp, "logits", logits, DType::kF32);
  MLA_CHECK(logits.ndim() == 2, "{}: logits {} must be [T, E]", kOp, shape_str(logits.shape()));
  const int64_t t = logits.dim(0), e = logits.dim(1), k = params.top_k;
  const bool noaux = params.method == RouterTopkMethod::kNoAuxTc;
  if (noaux) {
    gpu::check_dtype(kOp, "correction_bias", correction_bias, DType::kF32);
    gpu::check_shape(kOp, "correction_bias", correction_bias, {e});
  } else {
    MLA_CHECK(!correction_bias.defined(), "{}: a correction bias is only used by noaux_tc routing", kOp);
  }
  const bool grouped = params.method != RouterTopkMethod::kGreedy;
  const int64_t groups = grouped ? params.n_group : 1, kept = grouped ? params.topk_group : 1;
  MLA_CHECK(e >= 1 && e <= gpu::kRouterMaxExperts, "{}: {} experts; the kernel holds at most {}", kOp, e,
            gpu::kRouterMaxExperts);
  MLA_CHECK(groups >= 1 && groups <= gpu::kRouterMaxGroups && e % groups == 0 && kept >= 1 && kept <= groups,
            "{}: {} experts cannot be split into n_group = {} (<= {}) keeping topk_group = {}", kOp, e, groups,
            gpu::kRouterMaxGroups, kept);
  MLA_CHECK(k >= 1 && k <= kept * (e / groups) && k <= gpu::kRouterMaxTopK,
            "{}: top_k = {} must be in [1, {}] ({} experts, {} of {} groups kept) and <= {}", kOp, k,
            kept * (e / groups), e, kept, groups, gpu::kRouterMaxTopK);
  if (noaux) {
    MLA_CHECK(e / groups >= 2, "{}: noaux_tc group scores need >= 2 experts per group, got {}", kOp, e / groups);
  }
  gpu::check_dtype(kOp, "weights", outputs.weights, DType::kF32);
  gpu::check_shape(kOp, "weights", outputs.weights, {t, k});
  gpu::check_dtype(kOp, "expert_ids", outputs.expert_ids, DType::kI32);
  gpu::check_shape(kOp, "expert_ids", outputs.expert_ids, {t, k});
  if (params.row_slots.defined()) {
    gpu::check_dtype(kOp, "row_slots", params.row_slots, DType::kI64);
    gpu::check_shape(kOp, "row_slots", params.row_slots, {t});
  }

  gpu::MoeRouteParams p{};
  p.logits = gpu::ptr<const float>(logits);
  p.bias = noaux ? gpu::ptr<const float>(correction_bias) : nullptr;
  p.weights = gpu::ptr<float>(outputs.weights);
  p.expert_ids = gpu::ptr<int32_t>(outputs.expert_ids);
  p.tokens = t;
  p.experts = static_cast<int32_t>(e);
  p.top_k = static_cast<int32_t>(k);
  p.groups = static_cast<int32_t>(groups);
  p.kept_groups = static_cast<int32_t>(kept);
  p.group_score = !grouped ? gpu::RouterGroupScore::kNone
                  : noaux  ? gpu::RouterGroupScore::kTopTwoSum
                           : gpu::RouterGroupScore::kMax;
  p.sigmoid = params.scoring == RouterScoring::kSigmoid;
  p.normalize = params.weighting == RouterWeighting::kNormalizeThenScale ? params.norm_topk_prob
                                                                         : params.norm_topk_prob && k > 1;
  p.scale = params.weighting == RouterWeighting::kNormalizeThenScale || !p.normalize;
  p.routed_scaling_factor = params.routed_scaling_factor;
  p.row_slots = params.row_slots.defined() ? gpu::ptr<const int64_t>(params.row_slots) : nullptr;
  return p;
}

void moe_route_cuda(const Tensor& logits, const Tensor& correction_bias, const RouterParams& params,
                    RouterOutputs& outputs, cudaStream_t stream) {
  const gpu::MoeRouteParams p = gpu::moe_route_params("moe_route_cuda", logits, correction_bias, params, outputs);
  if (p.tokens == 0) return;
  if (gpu::group_routing_applies(p, gpu::kGroupRouteWarps)) {
    constexpr unsigned kThreads = 32 * gpu::kGroupRouteWarps;
    if (p.tokens <= kGroupRouteOneTokenMax) {
      return gpu::launch_programmatic(moe_route_groups_kernel<1>, gpu::grid_blocks(p.tokens, 1), kThreads, 0, stream, p);
    }
    constexpr int kMany = gpu::kGroupRouteMaxTokens;
    return gpu::launch_programmatic(moe_route_groups_kernel<kMany>, gpu::grid_blocks(p.tokens, kMany), kThreads, 0,
                                    stream, p);
  }
  gpu::launch_programmatic(moe_route_kernel, gpu::grid_blocks(p.tokens, gpu::kRouterWarps), gpu::kRouterThreads, 0,
                           stream, p);
}

}  // namespace mlaserve::ops
