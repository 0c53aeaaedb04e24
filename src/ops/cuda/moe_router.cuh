// MoE router on the GPU: device code. Contract: ops/moe_router.h; the kernel over tokens and its
// launch code: moe_router.cu.
//
// Symbols: T tokens, E experts (<= 256), k experts per token (<= 32), G groups (<= 32) of
// E / G experts, K kept groups.
//
// One warp per token; lane l holds experts l, l + 32, ... (<= 8 per lane, coalesced loads), and
// the warp's slice of shared memory holds the token's scores s [E], selection scores b [E] and
// group scores [G]. Steps, each the CPU reference's operation in the same fp32 order, so that the
// selection is bitwise the same as moe_route_cpu's on the same logits:
//   1. s: softmax (warp max; e_i = exp(l_i - max); the sum Σ e_i added by one lane in expert
//      order, the CPU's order; s_i = e_i / sum) or sigmoid 1 / (1 + exp(-l_i)). exp is the
//      correctly rounded fp32 exponential, computed in double and rounded once: that is what
//      glibc's expf returns (to within its 0.502-ulp bound), where CUDA's expf may be 2 ulp off,
//      enough to flip a near-tie. Divisions are IEEE (no fast-math).
//   2. b = s + bias (noaux_tc only).
//   3. group scores (lanes g < G, each over its group in shared memory): max of b, or the sum of
//      the two largest b; lane 0 keeps the K best groups (ties: lower group index) and every
//      expert outside them gets b = -inf.
//   4. k rounds of a warp argmax over (b, index), larger b first, then lower index (a total
//      order, so every lane agrees on the winner); the winner's lane marks it taken.
//   5. lane j < k takes w_j = s[id_j]; the normalising sum is added in j order by every lane
//      (shuffles from lane 0, 1, ...), then w_j /= sum + 1e-20 and/or w_j *= scale per the rule.
// The work per token is a few hundred instructions: the router is never a bottleneck, and the
// one-lane sums cost ~E dependent adds per warp, hidden by the other warps on the SM.
// route_token is one token's steps; moe_route_kernel (moe_router.cu) runs it over the tokens,
// and moe_route_gather.cuh runs it inside the fused decode-size routing + grouping + gather
// kernel, so both give the same ids and weights bit for bit.
// Launched with programmatic dependent launch (pdl.cuh): wait for the router GEMM, then let the
// next kernel launch.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string_view>

#include "core/tensor.h"
#include "ops/cuda/pdl.cuh"
#include "ops/moe_router.h"

namespace mlaserve::ops::gpu {

inline constexpr int kRouterMaxExperts = 256;
inline constexpr int kRouterExpertsPerLane = kRouterMaxExperts / 32;
inline constexpr int kRouterMaxGroups = 32;
inline constexpr int kRouterMaxTopK = 32;
inline constexpr int kRouterWarps = 4;  // tokens per CTA
inline constexpr int kRouterThreads = kRouterWarps * 32;

enum class RouterGroupScore : int32_t { kNone, kMax, kTopTwoSum };

struct MoeRouteParams {
  const float* logits;          // [T, E]
  const float* bias;            // [E] selection-only correction bias, or null
  float* weights;               // [T, k]
  int32_t* expert_ids;          // [T, k]
  int64_t tokens;               // T
  int32_t experts;              // E
  int32_t top_k;                // k
  int32_t groups;               // G (1 when group_score is kNone)
  int32_t kept_groups;          // K
  RouterGroupScore group_score; // kNone: greedy over all experts
  bool sigmoid;                 // scores: sigmoid (else softmax)
  bool normalize;               // w /= Σw + 1e-20
  bool scale;                   // w *= routed_scaling_factor
  float routed_scaling_factor;
  const int64_t* row_slots;     // [T] or null: a row with a negative slot is routed as another (RouterParams)
};

// The kernel parameters for moe_route(logits, correction_bias, params) -> outputs, after every
// check of moe_route_cuda (which fails naming op); moe_router.cu.
MoeRouteParams moe_route_params(std::string_view op, const Tensor& logits, const Tensor& correction_bias,
                                const RouterParams& params, RouterOutputs& outputs);

// The fp32 exponential rounded correctly (see the note above).
__device__ __forceinline__ float exp_rn(float x) { return static_cast<float>(exp(static_cast<double>(x))); }

// (v1, i1) ranks before (v2, i2): larger value, then lower index.
__device__ __forceinline__ bool ranks_before(float v1, int32_t i1, float v2, int32_t i2) {
  return v1 > v2 || (v1 == v2 && i1 < i2);
}

// One warp's shared memory for a token: scores, selection scores, group scores.
struct RouterWarpScratch {
  float s[kRouterMaxExperts];
  float b[kRouterMaxExperts];
  float group[kRouterMaxGroups];
};

// The row whose logits route row t (RouterParams::row_slots): t itself, or for a padding row
// (negative slot) row t mod R, R the rows with a slot; by one whole warp, the same on every lane.
__device__ __forceinline__ int64_t route_source_row(const MoeRouteParams& p, int64_t t, int lane) {
  if (p.row_slots == nullptr || p.row_slots[t] >= 0) return t;
  int64_t real = 0;
  for (int64_t i0 = 0; i0 < p.tokens; i0 += 32) {
    const int64_t i = i0 + lane;
    real += __popc(__ballot_sync(0xffffffffu, i < p.tokens && p.row_slots[i] >= 0));
  }
  return real > 0 ? t % real : t;
}

// Steps 1-5 for token t, by one whole warp (lane = threadIdx.x % 32): writes the token's k
// weights and expert ids to p.weights and p.expert_ids and returns, on lane j < k, the j-th
// selected expert. The caller syncs the warp before it reuses sh.
__device__ __forceinline__ int32_t route_token(const MoeRouteParams& p, int64_t t, RouterWarpScratch& sh, int lane) {
  constexpr float kNegInf = -INFINITY;
  const float* logits = p.logits + route_source_row(p, t, lane) * p.experts;
  float s[kRouterExpertsPerLane], b[kRouterExpertsPerLane];  // lanes past E keep s = 0, b = -inf
#pragma unroll
  for (int i = 0; i < kRouterExpertsPerLane; ++i) s[i] = 0.0f, b[i] = kNegInf;

  // 1. scores
  if (p.sigmoid) {
#pragma unroll
    for (int i = 0; i < kRouterExpertsPerLane; ++i) {
      const int e = lane + 32 * i;
      if (e < p.experts) s[i] = 1.0f / (1.0f + exp_rn(-logits[e]));
    }
  } else {
    float m = kNegInf;
#pragma unroll
    for (int i = 0; i < kRouterExpertsPerLane; ++i) {
      const int e = lane + 32 * i;
      if (e < p.experts) m = fmaxf(m, logits[e]);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
#pragma unroll
    for (int i = 0; i < kRouterExpertsPerLane; ++i) {
      const int e = lane + 32 * i;
      if (e < p.experts) sh.s[e] = s[i] = exp_rn(logits[e] - m);
    }
    __syncwarp();
    float sum = 0.0f;
    if (lane == 0) {
      for (int e = 0; e < p.experts; ++e) sum += sh.s[e];
    }
    sum = __shfl_sync(0xffffffffu, sum, 0);
    __syncwarp();  // lane 0 has read every e_i before they are overwritten by s_i below
#pragma unroll
    for (int i = 0; i < kRouterExpertsPerLane; ++i) s[i] /= sum;
  }
#pragma unroll
  for (int i = 0; i < kRouterExpertsPerLane; ++i) {
    const int e = lane + 32 * i;
    if (e >= p.experts) continue;
    sh.s[e] = s[i];
    // 2. selection scores
    b[i] = p.bias != nullptr ? s[i] + p.bias[e] : s[i];
    sh.b[e] = b[i];
  }
  __syncwarp();

  // 3. group-limited selection
  if (p.group_score != RouterGroupScore::kNone) {
    const int per_group = p.experts / p.groups;
    if (lane < p.groups) {
      const float* members = sh.b + lane * per_group;
      float best = kNegInf, second = kNegInf;
      for (int i = 0; i < per_group; ++i) {
        const float v = members[i];
        if (v > best) {
          second = best;
          best = v;
        } else if (v > second) {
          second = v;
        }
      }
      sh.group[lane] = p.group_score == RouterGroupScore::kMax ? best : best + second;
    }
    __syncwarp();
    uint32_t kept = 0;
    if (lane == 0) {
      for (int round = 0; round < p.kept_groups; ++round) {
        int pick = -1;
        for (int g = 0; g < p.groups; ++g) {
          if (((kept >> g) & 1u) == 0 && (pick < 0 || ranks_before(sh.group[g], g, sh.group[pick], pick))) pick = g;
        }
        kept |= 1u << pick;
      }
    }
    kept = __shfl_sync(0xffffffffu, kept, 0);
#pragma unroll
    for (int i = 0; i < kRouterExpertsPerLane; ++i) {
      const int e = lane + 32 * i;
      if (e < p.experts && ((kept >> (e / per_group)) & 1u) == 0) b[i] = kNegInf;
    }
  }

  // 4. top-k by b
  uint32_t taken = 0;  // bit i: expert lane + 32 i is selected
  int32_t my_id = 0;   // lane j < k: the j-th selection
  for (int j = 0; j < p.top_k; ++j) {
    float best = kNegInf;
    int32_t best_id = INT32_MAX;
#pragma unroll
    for (int i = 0; i < kRouterExpertsPerLane; ++i) {
      const int e = lane + 32 * i;
      if (e < p.experts && ((taken >> i) & 1u) == 0 && ranks_before(b[i], e, best, best_id)) {
        best = b[i];
        best_id = e;
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float other = __shfl_xor_sync(0xffffffffu, best, o);
      const int32_t other_id = __shfl_xor_sync(0xffffffffu, best_id, o);
      if (ranks_before(other, other_id, best, best_id)) {
        best = other;
        best_id = other_id;
      }
    }
    if (best_id % 32 == lane) taken |= 1u << (best_id / 32);
    if (lane == j) my_id = best_id;
  }

  // 5. weights
  float w = lane < p.top_k ? sh.s[my_id] : 0.0f;
  if (p.normalize) {
    float sum = 0.0f;
    for (int j = 0; j < p.top_k; ++j) sum += __shfl_sync(0xffffffffu, w, j);
    w /= sum + 1e-20f;
  }
  if (p.scale) w *= p.routed_scaling_factor;
  if (lane < p.top_k) {
    p.weights[t * p.top_k + lane] = w;
    p.expert_ids[t * p.top_k + lane] = my_id;
  }
  return my_id;
}

}  // namespace mlaserve::ops::gpu
