// MoE dispatch (grouping by expert) and combine on the GPU: device code. Contract: ops/moe_dispatch.h; launch code:
// moe_dispatch.cu.
//
// Symbols: T tokens, k experts per token, P = T·k pairs (p = t·k + j), E experts (<= 256), H
// hidden width, C CTAs of the multi-CTA sort.
//
// The grouping is a stable counting sort of the P pairs by bucket: a pair's expert, or E for an
// id outside [0, E) (moe_route never produces one; such pairs sort after every expert, so the
// outputs stay a permutation and expert_offsets[E] counts only valid pairs). Two ways, with the
// same outputs (the stable order is unique); moe_dispatch_kernels.h picks by P:
//
// moe_group_by_expert_kernel (P <= kGroupOneCtaMaxPairs): ONE CTA of 1024 threads (no inter-CTA
// protocol, no workspace, deterministic):
//   1. histogram of the E + 1 buckets in shared memory;
//   2. exclusive scan by warp 0 -> expert_offsets and each bucket's running cursor
//      (scan_bucket_counts);
//   3. the pairs in chunks of 1024, in order (scatter_pairs). Within a warp, __match_any_sync
//      finds the lanes with the same bucket and a lane's rank among them (popc of the lower
//      lanes); the lowest such lane writes the warp's count for its bucket into
//      warp_count[warp][bucket]. One thread per bucket then walks the 32 warps in order, turning
//      each non-zero count into the warp's first position (cursor + earlier warps) and advancing
//      the cursor. Each pair lands at its warp's first position + its rank: pair order is kept
//      within every expert. The lowest lane then zeroes its entry, so the table is clean for the
//      next chunk.
//   4. (moe_group_and_gather, P <= kGroupGatherMaxPairs) after a __syncthreads the same CTA
//      copies the token rows into expert order, gathered[pos] = x[sorted_tokens[pos]], in
//      16-byte vectors: at most 64 rows (512 KB at V3's H = 7168, 24 KB for one V2-Lite token),
//      which saves the separate gather launch of a decode step.
// Cost: ~3.4 us per chunk of 1024 pairs on an H200 (the ids' loads of steps 1 and 3 are not
// overlapped, two __syncthreads and a 32-step walk): 33.5 us at 9600 pairs (V2-Lite, T 1600), ~150
// us at 8192 tokens of top-6 or top-8. Decode batches take a few microseconds in one launch.
//
// The multi-CTA sort (P > kGroupOneCtaMaxPairs): C = ceil(P / S) CTAs of 1024 threads, CTA c
// owning the pairs [c·S, (c+1)·S), S a multiple of 1024 that keeps C <= kGroupMaxCtas (one chunk
// a CTA up to 64 Ki pairs: V3's 8192 tokens), and a [E + 1, C] i32 workspace from the caching
// allocator; three launches:
//   1. moe_group_histogram_kernel: CTA c's bucket counts -> counts[:, c];
//   2. moe_group_scan_kernel (one CTA): the counts in expert-major, CTA-minor order scanned into
//      expert_offsets and each CTA's first position per bucket, counts[b, c] = offsets[b] + the
//      pairs of bucket b in CTAs before c;
//   3. moe_group_scatter_kernel: CTA c runs step 3 (scatter_pairs) over its pairs from those
//      positions.
// Each is a launch, one pass over a CTA's ids and a few shared-memory steps, whatever P; the
// outputs are those of the one-CTA kernel, bit for bit, without atomics on global memory (the
// histogram's shared-memory atomics count, and a count is the same in any order), so
// deterministic. The row gather that follows (embedding_cuda) is a copy at the HBM rate and
// keeps its own launch.
//
// The combine's kernels are in moe_combine.cuh.
//
// All grouping kernels are launched with programmatic dependent launch (pdl.cuh): each waits for
// the kernel before it before its first load of what that kernel wrote, then lets the next kernel
// launch.
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
inline constexpr int kGroupMaxCtas = 64;         // CTAs of the multi-CTA sort (its scan holds 2 counts a lane)

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

// The bucket of pair `pair`: its expert, or E for an id outside [0, E).
__device__ __forceinline__ int group_bucket(const MoeGroupParams& p, int32_t pair) {
  const int32_t e = p.expert_ids[pair];
  return e >= 0 && e < p.experts ? e : p.experts;
}

// Step 2 by warp 0 (every lane calls it): the buckets' counts in cursor[0 .. buckets) become
// their first positions (an exclusive scan), also written to expert_offsets (bucket E's start is
// expert_offsets[E]: the valid pairs). Lane l owns buckets [l·per, (l+1)·per).
__device__ __forceinline__ void scan_bucket_counts(int32_t* cursor, int buckets, int32_t* expert_offsets) {
  const int lane = threadIdx.x % 32;
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
    expert_offsets[i] = run;
    run += count;
  }
}

// Step 3 over the pairs [begin, end), chunks of kGroupThreads in order: each pair goes to its
// bucket's cursor + its rank among the earlier pairs of its bucket, and the cursors advance.
// cursor[b] holds bucket b's next free position on entry (and on exit); warp_count is all zero
// on entry (and on exit). Every thread of the CTA calls it; the caller has synced after writing
// cursor and warp_count.
__device__ __forceinline__ void scatter_pairs(const MoeGroupParams& p, int32_t* cursor,
                                              int32_t (*warp_count)[kMoeMaxExperts + 1], int32_t begin,
                                              int32_t end) {
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int buckets = p.experts + 1;
  const uint32_t lower_lanes = (1u << lane) - 1u;
  for (int32_t chunk = begin; chunk < end; chunk += kGroupThreads) {
    const int32_t pair = chunk + tid;
    const bool valid = pair < end;
    const int bucket = valid ? group_bucket(p, pair) : -1;
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
}

// grid 1, block kGroupThreads; launched with launch_programmatic.
__global__ void __launch_bounds__(kGroupThreads, 1) moe_group_by_expert_kernel(MoeGroupParams p) {
  __shared__ int32_t cursor[kMoeMaxExperts + 1];                   // histogram, then next free position
  __shared__ int32_t warp_count[kGroupWarps][kMoeMaxExperts + 1];  // per chunk: count, then first position
  const int tid = threadIdx.x, warp = tid / 32;
  grid_dependency_wait();  // the ids come from the router kernel before
  launch_dependents();
  const int buckets = p.experts + 1;

  for (int i = tid; i < buckets; i += kGroupThreads) cursor[i] = 0;
  for (int i = tid; i < kGroupWarps * (kMoeMaxExperts + 1); i += kGroupThreads) (&warp_count[0][0])[i] = 0;
  __syncthreads();
  for (int32_t pair = tid; pair < p.pairs; pair += kGroupThreads) atomicAdd(&cursor[group_bucket(p, pair)], 1);
  __syncthreads();
  if (warp == 0) scan_bucket_counts(cursor, buckets, p.expert_offsets);
  __syncthreads();
  scatter_pairs(p, cursor, warp_count, 0, p.pairs);

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

// ---- The multi-CTA sort (P > kGroupOneCtaMaxPairs) ----------------------------------------------

// The split of the pairs among the sort's CTAs, and its workspace.
struct MoeGroupSplit {
  int32_t* counts;    // [E + 1, C] pairs of bucket b in CTA c's share (histogram kernel), then the
                      // first position of CTA c's pairs of bucket b (scan kernel)
  int32_t ctas;       // C <= kGroupMaxCtas
  int32_t cta_pairs;  // pairs per CTA, a multiple of kGroupThreads; the last CTA's share may be shorter
};

// CTA c's share of the pairs, [begin, end).
__device__ __forceinline__ int32_t split_begin(const MoeGroupSplit& s) { return blockIdx.x * s.cta_pairs; }
__device__ __forceinline__ int32_t split_end(const MoeGroupParams& p, const MoeGroupSplit& s) {
  return static_cast<int32_t>(min(int64_t{split_begin(s)} + s.cta_pairs, int64_t{p.pairs}));
}

// Kernel 1, grid C, block kGroupThreads: CTA c counts its pairs per bucket into counts[:, c].
// Launched with launch_programmatic.
__global__ void __launch_bounds__(kGroupThreads, 1) moe_group_histogram_kernel(MoeGroupParams p, MoeGroupSplit s) {
  __shared__ int32_t count[kMoeMaxExperts + 1];
  const int buckets = p.experts + 1;
  for (int i = threadIdx.x; i < buckets; i += kGroupThreads) count[i] = 0;
  __syncthreads();
  grid_dependency_wait();  // the ids come from the router kernel before
  launch_dependents();
  const int32_t end = split_end(p, s);
  for (int32_t pair = split_begin(s) + threadIdx.x; pair < end; pair += kGroupThreads) {
    atomicAdd(&count[group_bucket(p, pair)], 1);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < buckets; b += kGroupThreads) s.counts[b * s.ctas + blockIdx.x] = count[b];
}

// Kernel 2, grid 1, block kGroupThreads: the counts, expert-major and CTA-minor, become the first
// positions. Warp w holds the counts of buckets w, w + 32, .. (lane l: CTAs l, l + 32, ..) in
// registers; their totals per bucket are scanned by warp 0 (scan_bucket_counts: expert_offsets),
// then each warp scans its buckets over the CTAs from there. Launched with launch_programmatic.
__global__ void __launch_bounds__(kGroupThreads, 1) moe_group_scan_kernel(MoeGroupParams p, MoeGroupSplit s) {
  constexpr int kBucketsPerWarp = (kMoeMaxExperts + 1 + kGroupWarps - 1) / kGroupWarps;
  constexpr int kCtasPerLane = kGroupMaxCtas / 32;
  __shared__ int32_t cursor[kMoeMaxExperts + 1];  // bucket totals, then their first positions
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, buckets = p.experts + 1;
  grid_dependency_wait();  // the counts come from the histogram kernel just before
  launch_dependents();
  int32_t count[kBucketsPerWarp][kCtasPerLane];  // counts[b, c] for b = warp + 32 i, c = lane + 32 q
#pragma unroll
  for (int i = 0; i < kBucketsPerWarp; ++i) {
    const int b = warp + kGroupWarps * i;
#pragma unroll
    for (int q = 0; q < kCtasPerLane; ++q) {
      const int c = lane + 32 * q;
      count[i][q] = b < buckets && c < s.ctas ? s.counts[b * s.ctas + c] : 0;
    }
  }
#pragma unroll
  for (int i = 0; i < kBucketsPerWarp; ++i) {
    const int b = warp + kGroupWarps * i;
    int32_t total = 0;
#pragma unroll
    for (int q = 0; q < kCtasPerLane; ++q) total += count[i][q];
    total = __reduce_add_sync(0xffffffffu, total);
    if (lane == 0 && b < buckets) cursor[b] = total;
  }
  __syncthreads();
  if (warp == 0) scan_bucket_counts(cursor, buckets, p.expert_offsets);
  __syncthreads();
#pragma unroll
  for (int i = 0; i < kBucketsPerWarp; ++i) {
    const int b = warp + kGroupWarps * i;
    if (b >= buckets) break;  // the same for the whole warp
    int32_t run = cursor[b];
#pragma unroll
    for (int q = 0; q < kCtasPerLane; ++q) {
      int32_t inclusive = count[i][q];
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const int32_t v = __shfl_up_sync(0xffffffffu, inclusive, o);
        if (lane >= o) inclusive += v;
      }
      const int c = lane + 32 * q;
      if (c < s.ctas) s.counts[b * s.ctas + c] = run + inclusive - count[i][q];
      run += __shfl_sync(0xffffffffu, inclusive, 31);
    }
  }
}

// Kernel 3, grid C, block kGroupThreads: CTA c scatters its pairs from its first positions
// (scatter_pairs, as the one-CTA kernel does). Launched with launch_programmatic.
__global__ void __launch_bounds__(kGroupThreads, 1) moe_group_scatter_kernel(MoeGroupParams p, MoeGroupSplit s) {
  __shared__ int32_t cursor[kMoeMaxExperts + 1];                   // next free position
  __shared__ int32_t warp_count[kGroupWarps][kMoeMaxExperts + 1];  // per chunk: count, then first position
  const int buckets = p.experts + 1;
  for (int i = threadIdx.x; i < kGroupWarps * (kMoeMaxExperts + 1); i += kGroupThreads) (&warp_count[0][0])[i] = 0;
  grid_dependency_wait();  // the first positions come from the scan kernel just before
  launch_dependents();
  for (int b = threadIdx.x; b < buckets; b += kGroupThreads) cursor[b] = s.counts[b * s.ctas + blockIdx.x];
  __syncthreads();
  scatter_pairs(p, cursor, warp_count, split_begin(s), split_end(p, s));
}

}  // namespace mlaserve::ops::gpu
