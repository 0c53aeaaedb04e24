// MoE dispatch (grouping by expert) and combine on the GPU: device code. Contract: ops/moe_dispatch.h; launch code:
// moe_dispatch.cu.
//
// Symbols: T tokens, k experts per token, P = T·k pairs (p = t·k + j), E experts (<= 256), H
// hidden width.
//
// moe_group_by_expert_kernel: a stable counting sort of the P pairs by expert, in ONE CTA of
// 1024 threads (no inter-CTA protocol, no workspace, deterministic):
//   1. histogram of the E + 1 buckets in shared memory (bucket E: ids outside [0, E), which
//      moe_route never produces; they sort after every expert, so the outputs stay a
//      permutation and expert_offsets[E] counts only valid pairs);
//   2. exclusive scan by warp 0 -> expert_offsets and each bucket's running cursor;
//   3. the pairs in chunks of 1024, in order. Within a warp, __match_any_sync finds the lanes
//      with the same bucket and a lane's rank among them (popc of the lower lanes); the lowest
//      such lane writes the warp's count for its bucket into warp_count[warp][bucket]. One
//      thread per bucket then walks the 32 warps in order, turning each non-zero count into the
//      warp's first position (cursor + earlier warps) and advancing the cursor. Each pair lands at
//      its warp's first position + its rank: pair order is kept within every expert. The lowest
//      lane then zeroes its entry, so the table is clean for the next chunk.
// Cost: two __syncthreads and a 32-step walk per 1024 pairs: ~1-2 us per chunk, so decode
// batches (P <= a few thousand) take a few microseconds and a 4096-token prefill with k = 8
// (32 chunks) some tens, small next to its expert GEMMs.
//   4. (moe_group_and_gather, P <= kGroupGatherMaxPairs) after a __syncthreads the same CTA
//      copies the token rows into expert order, gathered[pos] = x[sorted_tokens[pos]], in
//      16-byte vectors: at most 64 rows (512 KB at V3's H = 7168, 24 KB for one V2-Lite token),
//      which saves the separate gather launch of a decode step.
//
// The combine's kernels are in moe_combine.cuh.
//
// moe_group_by_expert_kernel is launched with programmatic dependent launch (pdl.cuh): it waits
// for the kernel before it before its first load, then lets the next kernel launch.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/moe_combine.cuh"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/vec.cuh"

namespace mlaserve::ops::gpu {

inline constexpr int kMoeMaxExperts = 256;
inline constexpr int kGroupThreads = 1024;
inline constexpr int kGroupWarps = kGroupThreads / 32;
inline constexpr int kGroupGatherMaxPairs = 64;  // moe_group_and_gather copies rows in the grouping CTA up to here

struct MoeGroupParams {
  const int32_t* expert_ids;  // [P] (the router's [T, k], flat)
  int32_t* expert_offsets;    // [E + 1]
  int32_t* sorted_pairs;      // [P]
  int32_t* sorted_tokens;     // [P]
  int32_t pairs;              // P
  int32_t top_k;              // k
  int32_t experts;            // E
  const __nv_bfloat16* x;     // [T, H] token rows to gather (step 4), or null
  __nv_bfloat16* gathered;    // [P, H] the rows in expert order, or null
  int64_t hidden;             // H, a multiple of 8 (x and gathered 16-byte aligned)
};

// grid 1, block kGroupThreads; launched with launch_programmatic.
__global__ void __launch_bounds__(kGroupThreads, 1) moe_group_by_expert_kernel(MoeGroupParams p) {
  __shared__ int32_t cursor[kMoeMaxExperts + 1];                   // histogram, then next free position
  __shared__ int32_t warp_count[kGroupWarps][kMoeMaxExperts + 1];  // per chunk: count, then first position
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  grid_dependency_wait();  // the ids come from the router kernel before
  launch_dependents();
  const int buckets = p.experts + 1;
  auto bucket_of = [&](int32_t pair) {
    const int32_t e = p.expert_ids[pair];
    return e >= 0 && e < p.experts ? e : p.experts;
  };

  for (int i = tid; i < buckets; i += kGroupThreads) cursor[i] = 0;
  for (int i = tid; i < kGroupWarps * (kMoeMaxExperts + 1); i += kGroupThreads) (&warp_count[0][0])[i] = 0;
  __syncthreads();
  for (int32_t pair = tid; pair < p.pairs; pair += kGroupThreads) atomicAdd(&cursor[bucket_of(pair)], 1);
  __syncthreads();

  if (warp == 0) {  // exclusive scan: lane l owns buckets [l·per, (l+1)·per)
    const int per = (buckets + 31) / 32, begin = min(lane * per, buckets), end = min(begin + per, buckets);
    int32_t local = 0;
    for (int i = begin; i < end; ++i) local += cursor[i];
    int32_t inclusive = local;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int32_t v = __shfl_up_sync(0xffffffffu, inclusive, o);
      if (lane >= o) inclusive += v;
    }
    int32_t run = inclusive - local;
    for (int i = begin; i < end; ++i) {
      const int32_t count = cursor[i];
      cursor[i] = run;
      p.expert_offsets[i] = run;  // bucket E's start is expert_offsets[E]: the valid pairs
      run += count;
    }
  }
  __syncthreads();

  const uint32_t lower_lanes = (1u << lane) - 1u;
  for (int32_t chunk = 0; chunk < p.pairs; chunk += kGroupThreads) {
    const int32_t pair = chunk + tid;
    const bool valid = pair < p.pairs;
    const int bucket = valid ? bucket_of(pair) : -1;
    const uint32_t peers = __match_any_sync(0xffffffffu, bucket);
    const int rank = __popc(peers & lower_lanes);
    if (valid && rank == 0) warp_count[warp][bucket] = __popc(peers);
    __syncthreads();
    for (int b = tid; b < buckets; b += kGroupThreads) {
      int32_t run = cursor[b];
      for (int w = 0; w < kGroupWarps; ++w) {
        const int32_t count = warp_count[w][b];
        if (count != 0) {
          warp_count[w][b] = run;
          run += count;
        }
      }
      cursor[b] = run;
    }
    __syncthreads();
    if (valid) {
      const int32_t pos = warp_count[warp][bucket] + rank;
      p.sorted_pairs[pos] = pair;
      p.sorted_tokens[pos] = pair / p.top_k;
    }
    __syncwarp();
    if (valid && rank == 0) warp_count[warp][bucket] = 0;
    __syncwarp();
  }

  if (p.gathered == nullptr) return;
  __syncthreads();  // this CTA's sorted_tokens writes are visible to all its threads
  const int64_t vectors = p.hidden / 8;
  for (int64_t i = tid; i < p.pairs * vectors; i += kGroupThreads) {
    const int64_t pos = i / vectors, c = i % vectors;
    const int64_t token = p.sorted_tokens[pos];
    *reinterpret_cast<uint4*>(p.gathered + pos * p.hidden + c * 8) =
        *reinterpret_cast<const uint4*>(p.x + token * p.hidden + c * 8);
  }
}

}  // namespace mlaserve::ops::gpu
