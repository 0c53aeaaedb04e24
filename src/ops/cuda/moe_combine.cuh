// The MoE combine's device code (moe_combine_cuda, ops/moe_dispatch.h; launch code:
// moe_dispatch.cu), and the per-vector combine that moe_combine_add_rms_norm (moe_combine_norm.cuh)
// shares with it. Templates, inline functions and one host declaration: included by more than one TU.
//
// Symbols: T tokens, k experts per token, P = T·k pairs (p = t·k + j), H hidden width.
//
// Every kernel: one thread per vector of 8 channels of a token row (kVec = 8; 1 on the
// one-element path): acc = y[t] in fp32, acc += w[t, j] · expert_out[position of pair t·k + j]
// for j = 0 .. k-1 in order, y[t] = bf16(acc), rounded once (or acc itself when y is f32); a pair
// that no sorted position names adds nothing. Two ways to find a token's k positions
// (moe_dispatch_kernels.h picks by size):
//   - moe_combine_scan_kernel (decode batches, P <= kCombineScanPairs): each CTA scans
//     sorted_pairs (P i32 from L2, a few loads a thread) into shared memory: one launch;
//     combine_vec loads the rows of up to kCombineBatch = 8 pairs before the first is added, so
//     that their trips to L2 overlap (at one token the combine is a chain of such trips);
//   - invert_pairs then moe_combine_rows_kernel (prefill): the inverse of sorted_pairs in a [P]
//     i32 workspace from the caching allocator, then one CTA a token row whose first k threads
//     stage the token's positions and weights in shared memory (stage_row_pairs). The workspace
//     is not cleared: a position is used only when sorted_pairs names the pair there, which is
//     what a -1 fill would give, without a memset. combine_vec_staged holds the rows' vectors as
//     loaded (bf16, 4 registers each instead of 8 floats). Why: the former prefill kernels (the
//     scan kernels' combine_vec over an inverse from memory) take 97-101 registers a thread, so
//     two CTAs of 256 threads fit an SM: 16 warps, each CTA a chain of dependent trips (its
//     positions, then its rows, then the norm's weight) with ~32 KB in flight at most, and the
//     fused combine + norm streamed at about a third of HBM's rate (40 us for 65 MB at V2-Lite's
//     T = 1600, ncu). At <= 64 registers kCombineRowsCtasPerSm = 4 CTAs share an SM, each staging
//     its positions (two L2 trips) while the others stream their rows.
// Both give the same bits: the same fp32 expressions in the same order.
//
// Both kernels are launched with programmatic dependent launch (pdl.cuh): they wait for the kernel
// before them before their first load, then let the next kernel launch; invert_pairs's kernel
// does the same. With early_inputs (MoeCombineScope) the scan kernel reads its first token's
// positions (held_offsets, then sorted_pairs: two dependent trips) and prefetches its weights
// before the wait, which then leaves expert_out's rows (and y) as the one trip after it: at one
// token under tensor parallelism this kernel ends each MoE layer on the step's serial path.
#pragma once

#include <cuda_bf16.h>

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/tensor.h"
#include "ops/cuda/moe_dispatch_kernels.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/vec.cuh"

namespace mlaserve::ops::gpu {

inline constexpr int kCombineThreads = 256;
inline constexpr int kCombineBatch = 8;          // pairs' rows a combine thread loads before it adds them
inline constexpr int kCombineRowsCtasPerSm = 4;  // the row kernels' CTAs an SM (<= 64 registers a thread)

template <typename Y>
struct MoeCombineParams {
  const __nv_bfloat16* expert_out;  // [P, H] in sorted order
  const int32_t* sorted_pairs;      // [P]
  const int32_t* position;          // [P] workspace: each pair's sorted position (invert_pairs), rows kernel only
  const float* weights;             // [T, k]
  Y* y;                             // [T, H] bf16 or f32, accumulated into (or written: !accumulate)
  int64_t tokens;                   // T
  int32_t top_k;                    // k
  int64_t hidden;                   // H
  const int32_t* held_offsets;      // [held_experts + 1] or null (MoeCombineScope::held_offsets)
  int32_t held_experts;
  bool accumulate;                  // MoeCombineScope::accumulate
  bool early_inputs;                // MoeCombineScope::early_inputs (the scan kernel)
};

// The sorted positions [lo, hi) that hold rows (MoeCombineScope): offsets of the held experts'
// first and past-last rows, or all P. Read after the kernel's wait (the routing wrote them), or
// before it with early_inputs.
template <typename Y>
__device__ __forceinline__ int2 held_positions(const MoeCombineParams<Y>& p) {
  const int pairs = static_cast<int>(p.tokens * p.top_k);
  return p.held_offsets != nullptr ? make_int2(p.held_offsets[0], p.held_offsets[p.held_experts])
                                   : make_int2(0, pairs);
}

// A combine thread's starting sum for its vector of y: y's values (p.accumulate), or zeros.
template <int kVec, typename Y>
__device__ __forceinline__ void start_sum(const MoeCombineParams<Y>& p, const Y* y, float (&acc)[kVec]) {
  if (p.accumulate) {
    load_vec<kVec>(y, acc);
  } else {
    fill_vec<kVec>(acc, 0.0f);
  }
}

// Host (moe_dispatch.cu, where its kernel is defined): the row kernels' [P] i32 workspace, from the
// caching allocator, with position[sorted_pairs[pos]] = pos for every pos whose entry is a pair in
// [0, P). Entries no position names keep what they held: stage_row_pairs checks each position it
// reads. Its kernel is launched with launch_programmatic; the workspace goes back to the allocator
// when the caller drops it, after queueing its readers on `stream`.
Tensor invert_pairs(const int32_t* sorted_pairs, int64_t pairs, cudaStream_t stream);

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

// Token t's k sorted positions into position[0 .. k) (shared memory), found by scanning the
// entries [lo, hi) of sorted_pairs (-1 where no entry there names a pair; every row: lo 0, hi P).
// Every thread of the CTA calls it; it syncs the CTA before it returns. The caller syncs again
// before the next call rewrites position.
__device__ __forceinline__ void scan_token_positions(const int32_t* sorted_pairs, int64_t lo, int64_t hi, int64_t t,
                                                     int32_t top_k, int32_t* position) {
  for (int j = threadIdx.x; j < top_k; j += blockDim.x) position[j] = -1;
  __syncthreads();
  const int64_t first = t * top_k;
  for (int64_t pos = lo + threadIdx.x; pos < hi; pos += blockDim.x) {
    const int64_t j = sorted_pairs[pos] - first;
    if (j >= 0 && j < top_k) position[j] = static_cast<int32_t>(pos);
  }
  __syncthreads();
}

// The row kernels' view of token t's k <= kCombineMaxTopK pairs, written by threads 0 .. k-1 into
// shared memory: position[j] = the sorted position of pair t·k + j, or -1 unless the inverse
// workspace holds a position in [lo, hi) (the rows held: [0, P) for all) whose sorted_pairs entry is
// that pair (the workspace is not cleared: this check makes an entry no position wrote add nothing,
// as a -1 fill would); weight[j] = its weight. The caller syncs before reading them and before the
// next call.
__device__ __forceinline__ void stage_row_pairs(const int32_t* inverse, const int32_t* sorted_pairs,
                                                const float* weights, int64_t lo, int64_t hi, int64_t t,
                                                int32_t top_k, int32_t* position, float* weight) {
  if (static_cast<int>(threadIdx.x) >= top_k) return;
  const int64_t pair = t * top_k + threadIdx.x;
  const int32_t at = inverse[pair];
  position[threadIdx.x] = at >= lo && at < hi && sorted_pairs[at] == pair ? at : -1;
  weight[threadIdx.x] = weights[pair];
}

// combine_vec for the row kernels: the same sum in the same order (acc += w_j · x_j for j = 0 ..
// k-1, a position < 0 adding nothing), with the token's positions and weights staged in shared
// memory (stage_row_pairs) and the kCombineBatch rows' vectors held as loaded (Bf16Vec) until each
// is added. The wide decode kernel of moe_combine_add_rms_norm (1024 threads, 64 registers each)
// calls it too, with its scanned positions and the weights in global memory.
template <int kVec>
__device__ __forceinline__ void combine_vec_staged(const __nv_bfloat16* expert_out, const int32_t* position,
                                                   const float* weight, int32_t top_k, int64_t hidden, int64_t c,
                                                   float (&acc)[kVec]) {
  for (int j0 = 0; j0 < top_k; j0 += kCombineBatch) {
    Bf16Vec<kVec> x[kCombineBatch];
#pragma unroll
    for (int u = 0; u < kCombineBatch; ++u) {
      const int32_t pos = j0 + u < top_k ? position[j0 + u] : -1;
      if (pos >= 0) x[u] = load_bf16_vec<kVec>(expert_out + pos * hidden + c * kVec);
    }
#pragma unroll
    for (int u = 0; u < kCombineBatch; ++u) {
      if (j0 + u >= top_k || position[j0 + u] < 0) continue;
      const float w = weight[j0 + u];
      float v[kVec];
      unpack_vec<kVec>(x[u], v);
#pragma unroll
      for (int i = 0; i < kVec; ++i) acc[i] += w * v[i];
    }
  }
}

// This CTA's share of token t's row: y[t] = bf16(y[t] + sum_j w[t, j] · expert_out[position[j]])
// (combine_vec; rounded once, or fp32 y as it is; from 0 instead of y[t] without p.accumulate).
template <int kVec, typename Y>
__device__ __forceinline__ void combine_row(const MoeCombineParams<Y>& p, int64_t t, const int32_t* position,
                                            int64_t vectors) {  // vectors = H / kVec
  for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < vectors; c += int64_t{gridDim.x} * blockDim.x) {
    float acc[kVec];
    Y* y = p.y + t * p.hidden + c * kVec;
    start_sum<kVec>(p, y, acc);
    combine_vec<kVec>(p.expert_out, p.weights + t * p.top_k, position, p.top_k, p.hidden, c, acc);
    store_vec<kVec>(y, acc);
  }
}

// grid (ceil(H / kVec / kCombineThreads), min(T, 65535)), block kCombineThreads; P <=
// kCombineScanPairs, k <= kCombineScanMaxTopK; p.position unused. Launched with
// launch_programmatic.
template <int kVec, typename Y>
__global__ void __launch_bounds__(kCombineThreads) moe_combine_scan_kernel(MoeCombineParams<Y> p) {
  __shared__ int32_t position[kCombineScanMaxTopK];  // this token's pairs' sorted positions
  const bool early = p.early_inputs;  // the CTA's first token (grid.y <= T), before the wait
  int2 held = make_int2(0, 0);
  if (early) {
    held = held_positions(p);
    scan_token_positions(p.sorted_pairs, held.x, held.y, blockIdx.y, p.top_k, position);
    if (static_cast<int>(threadIdx.x) < p.top_k) prefetch_l1(p.weights + blockIdx.y * p.top_k + threadIdx.x);
  }
  grid_dependency_wait();  // expert_out and y come from the kernels before
  launch_dependents();
  const int64_t vectors = p.hidden / kVec;
  if (!early) held = held_positions(p);
  for (int64_t t = blockIdx.y; t < p.tokens; t += gridDim.y) {
    if (!early || t != blockIdx.y) scan_token_positions(p.sorted_pairs, held.x, held.y, t, p.top_k, position);
    combine_row<kVec>(p, t, position, vectors);
    __syncthreads();  // position[] is rewritten for the next token
  }
}

// grid (ceil(H / kVec / kCombineThreads), min(T, 65535)), block kCombineThreads (the grid's x
// covers a row once: a thread has one vector of each of its rows); k <= kCombineMaxTopK,
// p.position from invert_pairs. Launched with launch_programmatic.
template <int kVec, typename Y>
__global__ void __launch_bounds__(kCombineThreads, kCombineRowsCtasPerSm)
    moe_combine_rows_kernel(MoeCombineParams<Y> p) {
  __shared__ int32_t position[kCombineMaxTopK];  // this token's pairs' sorted positions (-1: none)
  __shared__ float weight[kCombineMaxTopK];      // and their weights
  grid_dependency_wait();  // the inverse comes from the kernel before, expert_out and y from earlier ones
  launch_dependents();
  const int64_t vectors = p.hidden / kVec;
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  const int2 held = held_positions(p);
  for (int64_t t = blockIdx.y; t < p.tokens; t += gridDim.y) {
    Y* y = p.y + t * p.hidden + c * kVec;
    float acc[kVec];
    if (c < vectors) start_sum<kVec>(p, y, acc);  // in flight while the positions are staged
    stage_row_pairs(p.position, p.sorted_pairs, p.weights, held.x, held.y, t, p.top_k, position, weight);
    __syncthreads();
    if (c < vectors) {
      combine_vec_staged<kVec>(p.expert_out, position, weight, p.top_k, p.hidden, c, acc);
      store_vec<kVec>(y, acc);
    }
    __syncthreads();  // position[] and weight[] are rewritten for the next token
  }
}

}  // namespace mlaserve::ops::gpu
