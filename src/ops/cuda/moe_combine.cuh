// The MoE combine's device code (moe_combine_cuda, ops/moe_dispatch.h; launch code:
// moe_dispatch.cu), and the per-vector combine that moe_combine_add_rms_norm (moe_combine_norm.cuh)
// shares with it. Templates, inline functions and one host declaration: included by more than one TU.
//
// Symbols: T tokens, k experts per token, P = T·k pairs (p = t·k + j), H hidden width.
//
// invert_pairs_async + moe_combine_kernel: the combine needs, for each pair, its sorted
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
// moe_combine_scan_kernel (the decode-size kernel) is launched with programmatic dependent launch
// (pdl.cuh): it waits for the kernel before it before its first load, then lets the next kernel
// launch.
#pragma once

#include <cuda_bf16.h>

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/cuda/pdl.cuh"
#include "ops/cuda/vec.cuh"

namespace mlaserve::ops::gpu {

inline constexpr int kCombineThreads = 256;
inline constexpr int kCombineScanPairs = 2048;  // up to this many pairs: moe_combine_scan_kernel
inline constexpr int kCombineScanMaxTopK = 16;
inline constexpr int kCombineBatch = 8;  // pairs' rows a combine thread loads before it adds them

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

// Host (moe_dispatch.cu, where its kernel is defined): the inverse of sorted_pairs ([P] i32, each
// pair's sorted position, -1 where no entry names it) in a stream-ordered allocation, for the
// kernels that take positions from memory (above kCombineScanPairs). The caller frees it with
// cudaFreeAsync on `stream` after them. Its kernel is launched plainly and never calls
// launch_dependents, so its readers are launched plainly too (pdl.cuh).
int32_t* invert_pairs_async(const int32_t* sorted_pairs, int64_t pairs, cudaStream_t stream);

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
