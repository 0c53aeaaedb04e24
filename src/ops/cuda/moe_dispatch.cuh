// MoE dispatch and combine on the GPU: device code. Contract: ops/moe_dispatch.h; launch code:
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
// moe_invert_pairs_kernel + moe_combine_kernel: the combine needs, for each pair, its sorted
// position (the inverse of sorted_pairs), kept in a [P] i32 workspace from the stream-ordered
// allocator; positions no entry names stay -1 and contribute nothing. Then one thread per vector
// of 8 channels of a token row: acc = y[t] in fp32, acc += w[t, j] · expert_out[position] for
// j = 0 .. k-1 in order, y[t] = bf16(acc), rounded once (or acc itself when y is f32); the
// rows of up to kCombineBatch = 8 pairs are loaded before the first is added.
// Decode batches (P <= kCombineScanPairs) take moe_combine_scan_kernel instead: each CTA finds
// its token's k positions itself by scanning sorted_pairs (P i32 from L2, a few loads a thread)
// into shared memory, then combines exactly as above: one launch instead of an allocation, a
// memset and two kernels (~8 us of serial latency per MoE layer at one token), same results bit
// for bit.
//
// moe_group_by_expert_kernel and moe_combine_scan_kernel (the decode-size kernels) are launched
// with programmatic dependent launch (pdl.cuh): they wait for the kernel before them before their
// first load, then let the next kernel launch.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/pdl.cuh"
#include "ops/cuda/vec.cuh"

namespace mlaserve::ops::gpu {

inline constexpr int kMoeMaxExperts = 256;
inline constexpr int kGroupThreads = 1024;
inline constexpr int kGroupWarps = kGroupThreads / 32;
inline constexpr int kCombineThreads = 256;
inline constexpr int kGroupGatherMaxPairs = 64;  // moe_group_and_gather copies rows in the grouping CTA up to here
inline constexpr int kCombineScanPairs = 2048;  // up to this many pairs: moe_combine_scan_kernel
inline constexpr int kCombineScanMaxTopK = 16;
inline constexpr int kCombineBatch = 8;  // pairs' rows a combine thread loads before it adds them

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

template <typename Y>
struct MoeCombineParams {
  const __nv_bfloat16* expert_out;  // [P, H] in sorted order
  const int32_t* sorted_pairs;      // [P]
  int32_t* position;                // [P] workspace: sorted position of each pair, -1 if none
  const float* weights;             // [T, k]
  Y* y;                             // [T, H] bf16 or f32, accumulated into
  int64_t tokens;                   // T
  int32_t top_k;                    // k
  int64_t hidden;                   // H
};

// grid-stride over P; position[] must be -1 beforehand.
template <typename Y>
__global__ void __launch_bounds__(kCombineThreads) moe_invert_pairs_kernel(MoeCombineParams<Y> p) {
  const int64_t pairs = p.tokens * p.top_k;
  for (int64_t pos = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; pos < pairs; pos += int64_t{gridDim.x} * blockDim.x) {
    const int32_t pair = p.sorted_pairs[pos];
    if (pair >= 0 && pair < pairs) p.position[pair] = static_cast<int32_t>(pos);
  }
}

// acc += sum_j w[t, j] · expert_out[position[j], c·kVec ..] over j = 0 .. k-1 in order, in fp32
// (one vector c of token t's row); a position < 0 adds nothing. `position` holds the token's k
// sorted positions (global or shared memory), `weights` its k weights. The rows of kCombineBatch
// pairs are loaded before the first of them is added, so that their trips to L2 overlap (at one
// token the combine is a chain of such trips); the sum keeps j order. Shared by moe_combine and
// moe_combine_add_rms_norm (moe_combine_norm.cuh), whose results must agree bit for bit.
template <int kVec>
__device__ __forceinline__ void combine_vec(const __nv_bfloat16* expert_out, const float* weights,
                                            const int32_t* position, int32_t top_k, int64_t hidden, int64_t c,
                                            float (&acc)[kVec]) {
  for (int j0 = 0; j0 < top_k; j0 += kCombineBatch) {
    int32_t pos[kCombineBatch];
    float w[kCombineBatch], x[kCombineBatch][kVec];
#pragma unroll
    for (int u = 0; u < kCombineBatch; ++u) {
      pos[u] = j0 + u < top_k ? position[j0 + u] : -1;
      w[u] = pos[u] >= 0 ? weights[j0 + u] : 0.0f;
      if (pos[u] >= 0) {
        load_vec<kVec>(expert_out + pos[u] * hidden + c * kVec, x[u]);
      } else {
        fill_vec<kVec>(x[u], 0.0f);
      }
    }
#pragma unroll
    for (int u = 0; u < kCombineBatch; ++u) {
      if (pos[u] < 0) continue;
#pragma unroll
      for (int i = 0; i < kVec; ++i) acc[i] += w[u] * x[u][i];
    }
  }
}

// Token t's k sorted positions into position[0 .. k) (shared memory), found by scanning the P
// entries of sorted_pairs (-1 where no entry names a pair). Every thread of the CTA calls it; it
// syncs the CTA before it returns. The caller syncs again before the next call rewrites position.
__device__ __forceinline__ void scan_token_positions(const int32_t* sorted_pairs, int64_t pairs, int64_t t,
                                                     int32_t top_k, int32_t* position) {
  for (int j = threadIdx.x; j < top_k; j += blockDim.x) position[j] = -1;
  __syncthreads();
  const int64_t first = t * top_k;
  for (int64_t pos = threadIdx.x; pos < pairs; pos += blockDim.x) {
    const int64_t j = sorted_pairs[pos] - first;
    if (j >= 0 && j < top_k) position[j] = static_cast<int32_t>(pos);
  }
  __syncthreads();
}

// This CTA's share of token t's row: y[t] = bf16(y[t] + sum_j w[t, j] · expert_out[position[j]])
// (combine_vec; rounded once, or fp32 y as it is).
template <int kVec, typename Y>
__device__ __forceinline__ void combine_row(const MoeCombineParams<Y>& p, int64_t t, const int32_t* position,
                                            int64_t vectors) {  // vectors = H / kVec
  for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < vectors; c += int64_t{gridDim.x} * blockDim.x) {
    float acc[kVec];
    Y* y = p.y + t * p.hidden + c * kVec;
    load_vec<kVec>(y, acc);
    combine_vec<kVec>(p.expert_out, p.weights + t * p.top_k, position, p.top_k, p.hidden, c, acc);
    store_vec<kVec>(y, acc);
  }
}

// grid (ceil(H / kVec / kCombineThreads), min(T, 65535)), block kCombineThreads.
template <int kVec, typename Y>
__global__ void __launch_bounds__(kCombineThreads) moe_combine_kernel(MoeCombineParams<Y> p) {
  const int64_t vectors = p.hidden / kVec;
  for (int64_t t = blockIdx.y; t < p.tokens; t += gridDim.y) {
    combine_row<kVec>(p, t, p.position + t * p.top_k, vectors);
  }
}

// grid (ceil(H / kVec / kCombineThreads), min(T, 65535)), block kCombineThreads; P <=
// kCombineScanPairs, k <= kCombineScanMaxTopK; p.position unused. Launched with
// launch_programmatic.
template <int kVec, typename Y>
__global__ void __launch_bounds__(kCombineThreads) moe_combine_scan_kernel(MoeCombineParams<Y> p) {
  __shared__ int32_t position[kCombineScanMaxTopK];  // this token's pairs' sorted positions
  grid_dependency_wait();  // expert_out and y come from the kernels before
  launch_dependents();
  const int64_t vectors = p.hidden / kVec, pairs = p.tokens * p.top_k;
  for (int64_t t = blockIdx.y; t < p.tokens; t += gridDim.y) {
    scan_token_positions(p.sorted_pairs, pairs, t, p.top_k, position);
    combine_row<kVec>(p, t, position, vectors);
    __syncthreads();  // position[] is rewritten for the next token
  }
}

}  // namespace mlaserve::ops::gpu
