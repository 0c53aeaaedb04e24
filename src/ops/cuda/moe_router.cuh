// MoE router on the GPU: device code. Contract: ops/moe_router.h; the kernel over tokens and its
// launch code: moe_router.cu.
//
// Symbols: T tokens, E experts (<= 256), k experts per token (<= 32), G groups (<= 32) of
// E / G experts, K kept groups.
//
// One warp per token; lane l holds experts l, l + 32, ... (kPerLane <= 8 a lane, coalesced
// loads), and the warp's slice of shared memory holds the token's scores s [E], selection scores
// b [E] and group scores [G]. Steps, each the CPU reference's operation in the same fp32 order,
// so that the selection is bitwise the same as moe_route_cpu's on the same logits:
//   1. s: softmax (warp max; e_i = exp(l_i - max); the sum Σ e_i added by one lane in expert
//      order, the CPU's order; s_i = e_i / sum) or sigmoid 1 / (1 + exp(-l_i)). exp is the
//      correctly rounded fp32 exponential, computed in double and rounded once (exp_rn): that is
//      what glibc's expf returns (to within its 0.502-ulp bound), where CUDA's expf may be 2 ulp
//      off, enough to flip a near-tie. Divisions are IEEE (no fast-math).
//   2. b = s + bias (noaux_tc only).
//   3. group scores, lane g < G holding group g's: when a group is 32 experts (V3), group g is
//      every lane's b[g], and its max (and runner-up: the max over the other lanes) is a redux
//      over the warp; otherwise lane g walks its group in shared memory. Max of b, or the sum of
//      the two largest b. A group is kept when fewer than K groups rank before it (ties: lower
//      group index); every expert outside the kept groups gets b = -inf.
//   4. k rounds of a warp argmax over (b, index), larger b first, then lower index (a total
//      order, so every lane agrees on the winner): each candidate a 64-bit rank (b's
//      order-preserving key, then the complement of its index), a lane's best by a pairwise tree,
//      the warp's by two reduxes (the key, then the index among the lanes holding it).
//   5. lane j < k takes w_j = s[id_j]; the normalising sum is added in j order by every lane
//      (from shared memory), then w_j /= sum + 1e-20 and/or w_j *= scale per the rule.
// No step loops serially over the experts but the softmax's one-lane sum (E dependent adds): at
// a decode step the routing is on the layer's serial path (one token, one warp), so its latency
// counts. One V2-Lite token (softmax, 64 experts, k = 6) takes ~2,600 cycles alone on an H200,
// one V3 token (sigmoid, groups, k = 8) ~9,400; the shuffle-butterfly form before took 6,640 and
// 13,000 (bench/NOTES-engine.md, 2026-11-30, twenty-first session).
// route_token is one token's steps; moe_route_kernel (moe_router.cu) runs it over the tokens,
// and moe_route_gather.cuh runs it inside the fused decode-size routing + grouping + gather
// kernel, so both give the same ids and weights bit for bit. V3's routing (sigmoid, groups of 32
// experts) goes by groups instead, over a CTA's warps (route_tokens_by_groups, below: the same
// ids and weights again).
// Launched with programmatic dependent launch (pdl.cuh): wait for the router GEMM, then let the
// next kernel launch.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string_view>

#include "core/tensor.h"
#include "ops/cuda/div_rn.cuh"
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

// The fp32 exponential of each x[i], in place, rounded correctly (see the note above): in double,
// x clamped to [-200, 100] (beyond, the fp32 result is 0 or inf either way), n = rint(x / ln 2),
// r = x - n ln 2 (ln 2 in two parts, |r| <= 0.347), e^r by its Taylor polynomial to r^13
// (relative error below 2^-50), times 2^n through the exponent bits, rounded once to fp32; NaN
// stays NaN. No branches, and the N evaluations step by step together, so that their dependent
// double FMAs overlap.
template <int N>
__device__ __forceinline__ void exp_rn(float (&x)[N]) {
  double r[N], poly[N];
  long long scale[N];
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const double xd = fmin(fmax(static_cast<double>(x[i]), -200.0), 100.0);
    const double n = rint(xd * 1.4426950408889634);
    r[i] = fma(n, -1.90821492927058770002e-10, fma(n, -6.93147180369123816490e-01, xd));
    scale[i] = (static_cast<long long>(n) + 1023) << 52;
    poly[i] = 1.0 / 6227020800.0;  // 1 / 13!
  }
#pragma unroll
  for (int k = 12; k >= 0; --k) {
    double inv_factorial = 1.0;  // 1 / k!, folded by the compiler
#pragma unroll
    for (int j = 2; j <= k; ++j) inv_factorial /= j;
#pragma unroll
    for (int i = 0; i < N; ++i) poly[i] = fma(poly[i], r[i], inv_factorial);
  }
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const float e = static_cast<float>(poly[i] * __longlong_as_double(scale[i]));
    x[i] = x[i] != x[i] ? x[i] : e;
  }
}

// (v1, i1) ranks before (v2, i2): larger value, then lower index.
__device__ __forceinline__ bool ranks_before(float v1, int32_t i1, float v2, int32_t i2) {
  return v1 > v2 || (v1 == v2 && i1 < i2);
}

// An unsigned key with ranks_before's order of values: a larger value, a larger key; -0 and +0 the
// same; NaN 0, below every value (ranks_before never ranks a NaN first).
__device__ __forceinline__ uint32_t router_key(float v) {
  if (v != v) return 0u;
  const uint32_t u = __float_as_uint(v == 0.0f ? 0.0f : v);
  return (u & 0x80000000u) != 0 ? ~u : u | 0x80000000u;
}

// The value of a router_key (+0 for either zero).
__device__ __forceinline__ float router_key_value(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) != 0 ? key & 0x7fffffffu : ~key);
}

// The warp's largest value, on every lane: one redux on the keys (reduce.cuh's warp_max takes five
// shuffles).
__device__ __forceinline__ float warp_max_by_key(float v) {
  return router_key_value(__reduce_max_sync(0xffffffffu, router_key(v)));
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
// selected expert. kPerLane experts a lane: E <= 32 kPerLane. The caller syncs the warp before it
// reuses sh.
template <int kPerLane = kRouterExpertsPerLane>
__device__ __forceinline__ int32_t route_token(const MoeRouteParams& p, int64_t t, RouterWarpScratch& sh, int lane) {
  static_assert(kPerLane >= 1 && kPerLane <= kRouterExpertsPerLane);
  constexpr float kNegInf = -INFINITY;
  const float* logits = p.logits + route_source_row(p, t, lane) * p.experts;
  float l[kPerLane], s[kPerLane], b[kPerLane];  // lanes past E: logit -inf, s = 0, b = -inf
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) l[i] = lane + 32 * i < p.experts ? logits[lane + 32 * i] : kNegInf;

  // 1. scores, every exponential of the lane at once (exp(-inf) = 0 past E)
  if (p.sigmoid) {
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) s[i] = -l[i];
    exp_rn(s);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) s[i] = 1.0f / (1.0f + s[i]);
  } else {
    float m = l[0];
#pragma unroll
    for (int i = 1; i < kPerLane; ++i) m = fmaxf(m, l[i]);
    m = warp_max_by_key(m);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) s[i] = l[i] - m;
    exp_rn(s);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      if (lane + 32 * i < p.experts) sh.s[lane + 32 * i] = s[i];
    }
    __syncwarp();
    float sum = 0.0f;
    if (lane == 0) {
      for (int e = 0; e < p.experts; ++e) sum += sh.s[e];
    }
    sum = __shfl_sync(0xffffffffu, sum, 0);
    __syncwarp();  // lane 0 has read every e_i before they are overwritten by s_i below
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) s[i] /= sum;
  }
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int e = lane + 32 * i;
    b[i] = kNegInf;
    if (e >= p.experts) continue;
    sh.s[e] = s[i];
    // 2. selection scores
    b[i] = p.bias != nullptr ? s[i] + p.bias[e] : s[i];
    sh.b[e] = b[i];
  }
  __syncwarp();

  // 3. group-limited selection: lane g < G holds group g's score, then keeps the group if fewer
  //    than K groups rank before it
  if (p.group_score != RouterGroupScore::kNone) {
    const int per_group = p.experts / p.groups;
    float group = kNegInf;
    if (per_group == 32) {  // group g is every lane's b[g] (-inf past G): a warp max per group, in step
      uint32_t key[kPerLane], top[kPerLane];
#pragma unroll
      for (int g = 0; g < kPerLane; ++g) key[g] = router_key(b[g]);
#pragma unroll
      for (int g = 0; g < kPerLane; ++g) top[g] = __reduce_max_sync(0xffffffffu, key[g]);
      float score[kPerLane];
#pragma unroll
      for (int g = 0; g < kPerLane; ++g) score[g] = router_key_value(top[g]);
      if (p.group_score == RouterGroupScore::kTopTwoSum) {  // plus the runner-up: the best of the other lanes
        int first[kPerLane];
#pragma unroll
        for (int g = 0; g < kPerLane; ++g) first[g] = __ffs(__ballot_sync(0xffffffffu, key[g] == top[g])) - 1;
#pragma unroll
        for (int g = 0; g < kPerLane; ++g) {
          score[g] += router_key_value(__reduce_max_sync(0xffffffffu, lane == first[g] ? 0u : key[g]));
        }
      }
#pragma unroll
      for (int g = 0; g < kPerLane; ++g) group = lane == g ? score[g] : group;
    } else if (lane < p.groups) {
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
      group = p.group_score == RouterGroupScore::kMax ? best : best + second;
    }
    if (lane < p.groups) sh.group[lane] = group;
    __syncwarp();
    int ahead = 0;  // groups that rank before this lane's
    for (int g = 0; g < p.groups; ++g) ahead += ranks_before(sh.group[g], g, group, lane) ? 1 : 0;
    const uint32_t kept = __ballot_sync(0xffffffffu, lane < p.groups && ahead < p.kept_groups);
    __syncwarp();  // every lane has read the group scores (step 5 reuses sh.group)
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int e = lane + 32 * i;
      if (e < p.experts && ((kept >> (e / per_group)) & 1u) == 0) b[i] = kNegInf;
    }
  }

  // 4. top-k by b: each candidate as a 64-bit rank (b's key, then the complement of its index, so
  //    that larger ranks first in ranks_before's order; 0 when taken or past E); a round takes the
  //    warp's largest head: the largest key by one redux, then the lowest index holding it by
  //    another
  uint64_t rank[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int e = lane + 32 * i;
    rank[i] = e < p.experts ? uint64_t{router_key(b[i])} << 32 | ~static_cast<uint32_t>(e) : 0u;
  }
  int32_t my_id = 0;  // lane j < k: the j-th selection
  for (int j = 0; j < p.top_k; ++j) {
    uint64_t head[kPerLane];  // the lane's largest rank, by a pairwise tree: head[0]
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) head[i] = rank[i];
#pragma unroll
    for (int w = 1; w < kPerLane; w *= 2) {
#pragma unroll
      for (int i = 0; i + w < kPerLane; i += 2 * w) head[i] = head[i + w] > head[i] ? head[i + w] : head[i];
    }
    const uint32_t key = static_cast<uint32_t>(head[0] >> 32);
    const uint32_t top = __reduce_max_sync(0xffffffffu, key);
    const uint32_t low = key == top ? static_cast<uint32_t>(head[0]) : 0u;  // the index's complement
    const int32_t id = static_cast<int32_t>(~__reduce_max_sync(0xffffffffu, low));
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      if (lane + 32 * i == id) rank[i] = 0;
    }
    if (lane == j) my_id = id;
  }

  // 5. weights, the normalising sum in j order
  float w = lane < p.top_k ? sh.s[my_id] : 0.0f;
  if (p.normalize) {
    if (lane < p.top_k) sh.group[lane] = w;
    __syncwarp();
    float sum = 0.0f;
    for (int j = 0; j < p.top_k; ++j) sum += sh.group[j];
    w = div_rn_skip_zero(w, sum + 1e-20f);  // lanes past k: a zero
  }
  if (p.scale) w *= p.routed_scaling_factor;
  if (lane < p.top_k) {
    p.weights[t * p.top_k + lane] = w;
    p.expert_ids[t * p.top_k + lane] = my_id;
  }
  return my_id;
}

// ---- Group-parallel routing (V3, R1: sigmoid scores, groups of 32 experts) -----------------------
//
// route_token gives one token to one warp, which then holds 8 experts a lane and runs every step
// over all of them: ~2,000 dependent instructions a V3 token (ncu, H200: moe_route_kernel at 16
// tokens, 15,600 cycles at ~7.8 cycles an instruction), on the decode step's serial path once a
// MoE layer. route_tokens_by_groups routes up to kGroupRouteMaxTokens tokens with a CTA's warps
// instead. A (token, group) task is one warp's, lane l holding expert 32 g + l: warp w takes group
// g = w mod G of tokens w / G, w / G + kWarps / G, ... (G divides kWarps), all of them at once (its
// loads in flight together, each step over its tasks unrolled, so that their dependent chains
// overlap). Two phases split by __syncthreads:
//   A. s = sigmoid(logit), b = s + bias, the group's score (its max, or the sum of its two largest
//      b), as route_token's steps 1-3 compute them; then the group's k largest ranks (route_token's
//      64-bit ranks: b's key, then the complement of the index) by k rounds of two reduxes;
//   B. warp t takes token t: the groups kept (fewer than K groups rank before one: route_token's
//      rule), the token's G k candidates (two a lane for V3): a kept group's k largest ranks; a
//      group left out has b = -inf throughout in route_token, so its k largest are its k lowest
//      indices at -inf's key. Then route_token's k rounds of step 4 and its step 5 (the weights
//      s[id], normalised in j order, scaled).
// The ranks are a strict total order, so the k largest of all E experts are the k largest of the
// groups' k largest each (k <= 32, a group's size): the same ids in the same order as route_token,
// and the same weights bit for bit (the same fp32 operations on the same values).
// Token t's scores live in sh[t] (the caller's scratch, at least `count` of them); picks[t G + g]
// holds each task's ranks. H200, one task a warp (moe_route_groups_kernel<1> in a TP8 rank's decode
// step, globaltimer stamps; bench/NOTES-engine.md, fifty-sixth session): phase A 1.25-1.45 us,
// phase B 1.15-1.3 us.
inline constexpr int kGroupRouteMaxTokens = 8;
inline constexpr int kGroupRouteMaxGroups = 8;
inline constexpr int kGroupRouteMaxK = 8;
inline constexpr int kGroupRouteMaxCandidates = 64;  // G·k a token: two a lane in phase B
inline constexpr int kGroupRouteWarps = 8;           // moe_route_groups_kernel's CTAs

struct RouterGroupPicks {
  uint64_t rank[kGroupRouteMaxK];  // the group's k largest ranks, largest first
};

// Whether p's routing can go by groups with `warps` warps a CTA (sigmoid scores, groups of exactly
// 32 experts, G dividing the warps, small k), whatever the tokens.
__host__ __device__ inline bool group_routing_applies(const MoeRouteParams& p, int warps) {
  return p.sigmoid && p.group_score != RouterGroupScore::kNone && p.experts == 32 * p.groups &&
         p.groups <= kGroupRouteMaxGroups && warps % p.groups == 0 && p.top_k <= kGroupRouteMaxK &&
         p.groups * p.top_k <= kGroupRouteMaxCandidates;
}

// Tasks a warp takes at most when kWarps warps route up to kTokens tokens by groups.
__host__ __device__ constexpr int group_route_tasks(int tokens, int warps) {
  return (tokens * kGroupRouteMaxGroups + warps - 1) / warps;
}

// Whether route_tokens_by_groups<kWarps, kTasks> takes all of p's tokens.
template <int kWarps, int kTasks>
__device__ __forceinline__ bool routes_by_groups(const MoeRouteParams& p) {
  return group_routing_applies(p, kWarps) && p.tokens <= kGroupRouteMaxTokens &&
         p.tokens <= int64_t{kTasks} * kWarps / p.groups;
}

// p.bias ([E] or null) copied into `staged` ([E] floats) by the CTA's threads, and p pointed at it:
// visible after the caller's next __syncthreads. Called before a routing kernel's wait: the bias
// is a weight, which no kernel of the step writes, and the routing's serial path then reads it
// from shared memory instead of making a dependent L2 trip.
__device__ __forceinline__ void stage_router_bias(MoeRouteParams& p, float* staged) {
  if (p.bias == nullptr) return;
  for (int e = static_cast<int>(threadIdx.x); e < p.experts; e += static_cast<int>(blockDim.x)) staged[e] = p.bias[e];
  p.bias = staged;
}

// rows[i] = the row whose logits route token t0 + i (route_source_row), i < count, by the CTA's
// first count warps; the caller syncs before it reads them. Reads only p.row_slots: before the
// kernel's wait where the slots come from the step's metadata.
__device__ __forceinline__ void stage_source_rows(const MoeRouteParams& p, int64_t t0, int count, int64_t* rows) {
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  const int warps = static_cast<int>(blockDim.x) / 32;
  for (int i = warp; i < count; i += warps) {
    const int64_t row = route_source_row(p, t0 + i, lane);
    if (lane == 0) rows[i] = row;
  }
}

// Routes tokens t0 .. t0 + count - 1 (count <= kTasks kWarps / G; token t0 + i uses sh[i] and the
// logits of row rows[i], stage_source_rows'): writes their p.weights and p.expert_ids and, when
// bucket is not null, bucket[i·k + j] = the j-th expert of token t0 + i (E if outside [0, E), as
// route_group_gather_cta keeps it). Every thread of the CTA (kWarps warps) calls it;
// group_routing_applies(p, kWarps) holds.
template <int kWarps, int kTasks>
__device__ __forceinline__ void route_tokens_by_groups(const MoeRouteParams& p, int64_t t0, int count,
                                                       const int64_t* rows, RouterWarpScratch* sh,
                                                       RouterGroupPicks* picks, int32_t* bucket) {
  static_assert(kTasks >= 1);
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  const int groups = p.groups, k = p.top_k;
  const int g = warp % groups, e = 32 * g + lane, first_token = warp / groups, token_step = kWarps / groups;
  const uint32_t index_low = ~static_cast<uint32_t>(e);  // the low half of expert e's rank

  // A. scores, selection scores, group scores, then each group's k largest ranks
  const float bias = p.bias != nullptr ? p.bias[e] : 0.0f;
  float s[kTasks];
  uint32_t key[kTasks], low[kTasks];  // a candidate's rank: key << 32 | low; 0, 0 once taken
#pragma unroll
  for (int i = 0; i < kTasks; ++i) {  // every load of the warp in flight at once
    const int t = first_token + i * token_step;
    s[i] = t < count ? -p.logits[rows[t] * p.experts + e] : 0.0f;
  }
  exp_rn(s);
#pragma unroll
  for (int i = 0; i < kTasks; ++i) {
    const int t = first_token + i * token_step;
    key[i] = 0;
    low[i] = 0;
    if (t >= count) continue;
    const float score = 1.0f / (1.0f + s[i]);
    sh[t].s[e] = score;
    key[i] = router_key(p.bias != nullptr ? score + bias : score);
    low[i] = index_low;
  }
#pragma unroll
  for (int i = 0; i < kTasks; ++i) {
    const int t = first_token + i * token_step;
    if (t >= count) continue;
    const uint32_t top = __reduce_max_sync(0xffffffffu, key[i]);
    float group = router_key_value(top);
    if (p.group_score == RouterGroupScore::kTopTwoSum) {
      const int first = __ffs(__ballot_sync(0xffffffffu, key[i] == top)) - 1;
      group += router_key_value(__reduce_max_sync(0xffffffffu, lane == first ? 0u : key[i]));
    }
    if (lane == 0) sh[t].group[g] = group;
  }
  for (int j = 0; j < k; ++j) {
#pragma unroll
    for (int i = 0; i < kTasks; ++i) {
      const int t = first_token + i * token_step;
      if (t >= count) continue;
      const uint32_t top = __reduce_max_sync(0xffffffffu, key[i]);
      const uint32_t best = __reduce_max_sync(0xffffffffu, key[i] == top ? low[i] : 0u);
      if (lane == 0) picks[t * groups + g].rank[j] = uint64_t{top} << 32 | best;
      if (key[i] == top && low[i] == best) key[i] = low[i] = 0;
    }
  }
  __syncthreads();

  // B. token t: the kept groups, its k largest of the groups' candidates, then the weights
  const uint64_t left_out_key = uint64_t{router_key(-INFINITY)} << 32;
  const int candidates = groups * k;
  int cand_group[2], cand_j[2];  // candidate lane + 32 i: rank j of group cand_group
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    cand_group[i] = (lane + 32 * i) / k;
    cand_j[i] = lane + 32 * i - cand_group[i] * k;
  }
  for (int t = warp; t < count; t += kWarps) {
    const float mine = lane < groups ? sh[t].group[lane] : -INFINITY;
    int ahead = 0;  // groups that rank before this lane's
    for (int h = 0; h < groups; ++h) ahead += ranks_before(__shfl_sync(0xffffffffu, mine, h), h, mine, lane) ? 1 : 0;
    const uint32_t kept = __ballot_sync(0xffffffffu, lane < groups && ahead < p.kept_groups);
    uint64_t rank[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int c = lane + 32 * i, cg = cand_group[i], cj = cand_j[i];
      rank[i] = c >= candidates            ? 0u
                : (kept >> cg & 1u) != 0u ? picks[t * groups + cg].rank[cj]
                                           : left_out_key | ~static_cast<uint32_t>(32 * cg + cj);
    }
    int32_t my_id = 0;  // lane j < k: the j-th selection
    for (int j = 0; j < k; ++j) {
      const uint64_t head = rank[1] > rank[0] ? rank[1] : rank[0];
      const uint32_t key_top = __reduce_max_sync(0xffffffffu, static_cast<uint32_t>(head >> 32));
      const uint32_t best = __reduce_max_sync(
          0xffffffffu, static_cast<uint32_t>(head >> 32) == key_top ? static_cast<uint32_t>(head) : 0u);
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        if (rank[i] == (uint64_t{key_top} << 32 | best)) rank[i] = 0;
      }
      if (lane == j) my_id = static_cast<int32_t>(~best);
    }
    float w = lane < k ? sh[t].s[my_id] : 0.0f;
    if (p.normalize) {
      __syncwarp();  // every lane has read its group score
      if (lane < k) sh[t].group[lane] = w;
      __syncwarp();
      float sum = 0.0f;
      for (int j = 0; j < k; ++j) sum += sh[t].group[j];
      w = div_rn_skip_zero(w, sum + 1e-20f);  // lanes past k: a zero
    }
    if (p.scale) w *= p.routed_scaling_factor;
    if (lane < k) {
      const int64_t row = t0 + t;
      p.weights[row * k + lane] = w;
      p.expert_ids[row * k + lane] = my_id;
      if (bucket != nullptr) bucket[t * k + lane] = my_id >= 0 && my_id < p.experts ? my_id : p.experts;
    }
  }
}

}  // namespace mlaserve::ops::gpu
