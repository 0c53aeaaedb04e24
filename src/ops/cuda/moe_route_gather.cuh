// moe_route_and_gather on the GPU for decode sizes: device code. Contract: ops/moe_route_gather.h;
// launch code: moe_route_gather.cu.
//
// Symbols: T tokens, k experts per token, P = T·k <= kRouteGatherMaxPairs pairs (p = t·k + j),
// E experts (<= 256), H hidden width (a multiple of 8).
//
// One CTA of kWarps warps (kRouteGatherWarps, or kGemvWarps after the router's GEMV below),
// three phases split by __syncthreads:
//   1. routing: warp w routes tokens w, w + kWarps, ... with route_token
//      (moe_router.cuh, the code of moe_route_kernel: the same ids and weights bit for bit),
//      writing weights and expert_ids; lane j < k also keeps the pair's bucket in shared memory
//      (its expert, or E for an id outside [0, E), as moe_group_by_expert_kernel sorts them).
//      With sigmoid scores and groups of 32 experts (V3, R1) the warps share each token's groups
//      instead (route_tokens_by_groups: the same outputs, a V3 token in a fraction of one warp's
//      time).
//   2. grouping: thread p < P finds its pair's position in the stable order by bucket, the
//      number of pairs with a lower bucket or the same bucket and a lower index, and writes
//      sorted_pairs and sorted_tokens there; thread e <= E writes expert_offsets[e], the number of
//      pairs with a bucket below e. These are the unique stable sort: the counting sort's
//      outputs exactly. P <= 64, so each thread's count is 64 shared-memory reads.
//   3. gather: gathered[pos] = x[token at pos] in 16-byte vectors, kRouteGatherVectors loads a
//      thread in flight before their stores (one V2-Lite token: 6 rows of 4 KB, 3 vectors a
//      thread; V3 at 8 tokens: 64 rows of 14 KB, 56).
// One kernel instead of moe_route_kernel + moe_group_by_expert_kernel: a launch and a serial
// hand-over less per MoE layer of a decode step. moe_router_route_gather_kernel also takes the
// router's GEMV in (one launch for the router, routing, grouping and gather: another ~3 us of the
// chain a layer, bench/NOTES-engine.md 2026-11-29 02:58): its CTAs are those of the GEMV, and the
// last one to finish runs the three phases; moe_router_route_gather_cluster_kernel does the same
// with the GEMV's CTAs as one cluster (up to 64 experts), the logits meeting in CTA 0's shared
// memory instead of L2.
//
// Launched with programmatic dependent launch (pdl.cuh): before their wait the kernels only read
// what no kernel of the step writes (the row slots and the correction bias, with_staged_inputs;
// the router weights, linear_gemv.cuh); then moe_route_gather_kernel reads the router GEMM's
// logits, the GEMV kernels x; all let the next kernel (the experts' gate_up, which waits itself)
// launch.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/linear_gemv.cuh"
#include "ops/cuda/moe_router.cuh"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/sm80_ptx.cuh"
#include "ops/cuda/sm90_ptx.cuh"

namespace mlaserve::ops::gpu {

inline constexpr int kRouteGatherMaxPairs = 64;
inline constexpr int kRouteGatherWarps = 16;
inline constexpr int kRouteGatherThreads = 32 * kRouteGatherWarps;
inline constexpr int kRouteGatherVectors = 4;  // 16-byte row vectors a thread loads before it stores them

struct MoeRouteGatherParams {
  MoeRouteParams route;      // logits [T, E] -> weights, expert_ids [T, k]
  int32_t* expert_offsets;   // [E + 1]
  int32_t* sorted_pairs;     // [P]
  int32_t* sorted_tokens;    // [P]
  const __nv_bfloat16* x;    // [T, H], 16-byte aligned; null without a gather
  __nv_bfloat16* gathered;   // [P, H], 16-byte aligned, or null: no gather (phase 3 skipped)
  int64_t hidden;            // H, a multiple of 8
};

// Where a routing kernel stages its inputs that no kernel of the step writes, before its wait.
struct RouteStaging {
  int64_t slots[kRouteGatherMaxPairs];  // RouterParams::row_slots: T <= T·k <= kRouteGatherMaxPairs
  float bias[kRouterMaxExperts];        // the correction bias
};

// p with its row slots ([T] or null) and correction bias ([E] or null, stage_router_bias) copied
// into st by the CTA's threads, visible after the caller's next __syncthreads. Called before the
// kernel's wait: the slots are the step's metadata (copied to the device before its first kernel),
// not written by a kernel of the step either, and the routing's serial path then reads them from
// shared memory instead of making a dependent L2 trip.
__device__ __forceinline__ MoeRouteGatherParams with_staged_inputs(MoeRouteGatherParams p, RouteStaging& st) {
  MoeRouteParams& r = p.route;
  if (r.row_slots != nullptr) {
    for (int i = static_cast<int>(threadIdx.x); i < r.tokens; i += static_cast<int>(blockDim.x)) {
      st.slots[i] = r.row_slots[i];
    }
    r.row_slots = st.slots;
  }
  stage_router_bias(r, st.bias);
  return p;
}

// The three phases (the note at the top) by one CTA of kWarps warps, after the logits and x are
// visible to it; E <= 32 kPerLane (route_token), T <= kMaxTokens. Every thread of the CTA calls it.
template <int kWarps, int kPerLane = kRouterExpertsPerLane, int kMaxTokens = kGroupRouteMaxTokens>
__device__ __forceinline__ void route_group_gather_cta(const MoeRouteGatherParams& p) {
  constexpr int kTasks = group_route_tasks(kMaxTokens, kWarps);
  constexpr int kThreads = 32 * kWarps;
  __shared__ RouterWarpScratch scratch[kWarps];
  __shared__ int32_t bucket[kRouteGatherMaxPairs];    // pair -> its expert, E if outside [0, E)
  __shared__ int32_t token_at[kRouteGatherMaxPairs];  // sorted position -> token
  const MoeRouteParams& r = p.route;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;

  // 1. routing: a token a warp, or V3's groups over the warps (route_tokens_by_groups)
  if (routes_by_groups<kWarps, kTasks>(r)) {
    __shared__ RouterGroupPicks picks[kTasks * kWarps];  // a (token, group) task's (routes_by_groups)
    __shared__ int64_t rows[kGroupRouteMaxTokens];
    stage_source_rows(r, 0, static_cast<int>(r.tokens), rows);
    __syncthreads();
    route_tokens_by_groups<kWarps, kTasks>(r, 0, static_cast<int>(r.tokens), rows, scratch, picks, bucket);
  } else {
    for (int64_t t = warp; t < r.tokens; t += kWarps) {
      const int32_t id = route_token<kPerLane>(r, t, scratch[warp], lane);
      if (lane < r.top_k) bucket[t * r.top_k + lane] = id >= 0 && id < r.experts ? id : r.experts;
      __syncwarp();  // the next token reuses the warp's scratch
    }
  }
  __syncthreads();

  // 2. grouping
  const int pairs = static_cast<int>(r.tokens) * r.top_k;
  if (tid < pairs) {
    const int32_t mine = bucket[tid];
    int32_t pos = 0;
    for (int j = 0; j < pairs; ++j) pos += bucket[j] < mine || (bucket[j] == mine && j < tid) ? 1 : 0;
    p.sorted_pairs[pos] = tid;
    p.sorted_tokens[pos] = tid / r.top_k;
    token_at[pos] = tid / r.top_k;
  }
  for (int e = tid; e <= r.experts; e += kThreads) {
    int32_t below = 0;
    for (int j = 0; j < pairs; ++j) below += bucket[j] < e ? 1 : 0;
    p.expert_offsets[e] = below;
  }
  if (p.gathered == nullptr) return;
  __syncthreads();

  // 3. gather
  const int64_t vectors = p.hidden / 8, total = pairs * vectors;
  for (int64_t i0 = tid; i0 < total; i0 += int64_t{kThreads} * kRouteGatherVectors) {
    uint4 v[kRouteGatherVectors];
#pragma unroll
    for (int u = 0; u < kRouteGatherVectors; ++u) {
      const int64_t i = i0 + int64_t{u} * kThreads;
      if (i < total) {
        v[u] = *reinterpret_cast<const uint4*>(p.x + token_at[i / vectors] * p.hidden + i % vectors * 8);
      }
    }
#pragma unroll
    for (int u = 0; u < kRouteGatherVectors; ++u) {
      const int64_t i = i0 + int64_t{u} * kThreads;
      if (i < total) *reinterpret_cast<uint4*>(p.gathered + i * 8) = v[u];  // row i / vectors, vector i % vectors
    }
  }
}

// grid 1, block kRouteGatherThreads; T·k <= kRouteGatherMaxPairs. Launched with launch_programmatic.
__global__ void __launch_bounds__(kRouteGatherThreads, 1) moe_route_gather_kernel(MoeRouteGatherParams p) {
  __shared__ RouteStaging staged;
  const MoeRouteGatherParams q = with_staged_inputs(p, staged);
  grid_dependency_wait();  // the logits come from the kernel before, x from earlier ones
  launch_dependents();
  __syncthreads();
  route_group_gather_cta<kRouteGatherWarps>(q);
}

// The fused kernels' last CTA routes by groups (V3, R1) up to this many tokens; more run as the two
// ops after the router's GEMV (moe_router_route_and_gather_cuda): moe_route_cuda's CTA a token,
// then the grouping. H200, a V3 FP8 TP8 channel rank, 10 layers at 4,096 tokens (bench/NOTES-
// engine.md, fifty-sixth session): at 8 tokens the fused kernel ended 20-22 us after the norm that
// feeds it, its 8 warps routing by route_token or by groups (8 tasks a warp) alike, and the
// experts started ~25 us after the norm; through the GEMV and the two ops they start ~20 us after
// it (graph ms, HEAD / this, alternated: 1.749-1.761 / 1.707-1.732); at 4 tokens the fused kernel
// by groups: 1.374-1.398 / 1.354-1.368, and 1.342-1.344 against 1.350-1.376 with the two ops from 2
// tokens (2 and 3 tokens a tie).
inline constexpr int kFusedGroupRouteMaxTokens = 4;
__host__ __device__ constexpr int fused_group_route_tokens(int kt) {
  return kt < kFusedGroupRouteMaxTokens ? kt : kFusedGroupRouteMaxTokens;
}

// The router's GEMV and the three phases in one launch (moe_router_route_and_gather): the CTAs of
// linear_gemv_bf16_kernel write the logits ([T, E] f32, each CTA kGemvRows experts, the same bits
// as that kernel), then meet on a counter; the last to arrive routes, groups and gathers with its
// kGemvWarps warps. Each CTA fences its logits before it arrives and the last one after, so the
// last CTA reads every CTA's logits; it also sets the counter back to zero for the next call,
// which cannot start its own arrivals before this grid has ended (the kernels between wait for
// theirs). grid ceil(E / kGemvRows), block kGemvThreads; T <= kGemvMaxTokens, T·k <=
// kRouteGatherMaxPairs. Launched with launch_programmatic.
template <int kT, int kUnroll>
__global__ void __launch_bounds__(kGemvThreads, 1)
    moe_router_route_gather_kernel(GemvParams<float> logits, MoeRouteGatherParams p, int32_t* arrivals) {
  __shared__ bool last;
  __shared__ RouteStaging staged;
  const MoeRouteGatherParams q = with_staged_inputs(p, staged);  // every CTA: any may be the last
  linear_gemv_bf16_cta<kT, kUnroll>(logits);
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(arrivals, 1) == static_cast<int32_t>(gridDim.x) - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  if (threadIdx.x == 0) *arrivals = 0;
  route_group_gather_cta<kGemvWarps, kRouterExpertsPerLane, fused_group_route_tokens(kT)>(q);
}

// The router's GEMV and the three phases in one cluster, where the GEMV's CTAs fit one
// (moe_router_route_and_gather, E <= kGemvRows x kRouterClusterMaxCtas: V2-Lite's 64 experts in 16
// CTAs): each CTA writes its experts' logits into its own shared memory ([T, E], its rows only),
// copies them into CTA 0's (distributed shared memory), and after one cluster barrier CTA 0
// routes, groups and gathers from there, then writes the logits out. Against the counter kernel
// above, the logits' trip through L2, the two fences and the atomic leave the decode step's
// serial path. Same GEMV, same logits, same routing: the same bits. Measured in the V2-Lite decode
// step (one H200, bench/NOTES-engine.md 2026-11-30 01:50): -0.5% to -1.5% at batches 1, 4 and 8
// in BF16 and FP8 (TPOT batch 1 -1.2% / -1.5%), but +2% at FP8 batch 2, where the routed experts
// then start sooner and the shared experts' branch beside them waits longer for SMs.
// grid = one cluster of ceil(E / kGemvRows) CTAs, block kGemvThreads; T <= kGemvMaxTokens, T·k <=
// kRouteGatherMaxPairs. Launched with programmatic dependent launch and a cluster dimension.
inline constexpr int kRouterClusterMaxCtas = 16;  // a non-portable cluster size (Hopper)
inline constexpr int kRouterClusterExperts = kGemvRows * kRouterClusterMaxCtas;  // E <= 64

template <int kT, int kUnroll>
__global__ void __launch_bounds__(kGemvThreads, 1)
    moe_router_route_gather_cluster_kernel(GemvParams<float> logits, MoeRouteGatherParams p) {
  __shared__ float logits_s[kGemvMaxTokens * kRouterClusterExperts];  // [T, E]
  __shared__ RouteStaging staged;
  namespace ptx = sm90::ptx;
  MoeRouteGatherParams q = blockIdx.x == 0 ? with_staged_inputs(p, staged) : p;
  ptx::cluster_arrive_relaxed();  // this CTA has started (waited for before the first remote store)
  GemvParams<float> local = logits;
  local.out = logits_s;
  linear_gemv_bf16_cta<kT, kUnroll>(local);  // this CTA's rows of logits_s
  __syncthreads();
  ptx::cluster_wait();
  const int tid = static_cast<int>(threadIdx.x), e = logits.n;
  const int j = tid / kGemvRows, row = static_cast<int>(blockIdx.x) * kGemvRows + tid % kGemvRows;
  if (blockIdx.x != 0 && j < logits.t && row < e) {
    const uint32_t at = sm80::smem_u32(logits_s + j * e + row);
    ptx::st_cluster_u32(ptx::map_rank(at, 0), __float_as_uint(logits_s[j * e + row]));
  }
  ptx::cluster_arrive();
  ptx::cluster_wait();  // CTA 0 holds every logit
  if (blockIdx.x != 0) return;
  q.route.logits = logits_s;
  route_group_gather_cta<kGemvWarps, kRouterClusterExperts / 32, fused_group_route_tokens(kT)>(q);
  for (int i = tid; i < logits.t * e; i += kGemvThreads) logits.out[i] = logits_s[i];  // the op's logits
}

}  // namespace mlaserve::ops::gpu
