// moe_combine_add_rms_norm on the GPU: device code. Contract: ops/moe_combine_norm.h; launch
// code: moe_combine_norm.cu.
//
// Symbols: T tokens, k experts per token, P = T·k pairs (p = t·k + j), H hidden width.
//
// One CTA per token row (grid min(T, 65535), rows strided), the CTA shape of the row norms
// (rms_norm_heuristics.h: thread i owns vectors i, i + threads, ..; the scan kernel at a decode
// step's few V3 rows: the wide shape, one thread a vector, the same sums). Per row:
//   0. the token's k sorted positions, as the combine's kernels find them (moe_combine.cuh):
//      moe_combine_add_rms_norm_kernel (P <= kCombineScanPairs, decode batches) scans
//      sorted_pairs into shared memory (scan_token_positions); moe_combine_add_rms_norm_rows_kernel
//      (prefill) stages them from the inverse workspace (invert_pairs, stage_row_pairs);
//   1. each thread, for each of its vectors: acc = shared_out (or 0), acc += w_j · expert_out[pos_j]
//      in j order (combine_vec or combine_vec_staged, moe_combine.cuh: moe_combine's code and
//      order), y = bf16(acc) (moe_combine's store), v = bf16(residual + y) (add_rms_norm's residual
//      add), stored into residual; and sum_sq += v² over the vector's elements in order;
//   2. block_sum(sum_sq), inv_rms = 1 / sqrt(total / H + eps) (row_inv_rms, rms_norm.cuh: rms_norm.cu's own);
//   3. each thread re-reads its vectors of residual (L1: it just wrote them) and writes
//      out = bf16(w · (v · inv_rms)) (write_normed_row, rms_norm.cuh: rms_norm.cu's own), with
//      kQuant also out's FP8 quantisation (moe_combine_add_rms_norm_fp8).
// Steps 1-3 (combine_norm_row) are add_rms_norm_cuda's kernel with y computed in registers
// instead of loaded: the same thread count, element-to-thread map and expressions, so the same
// bits. Between the two former kernels, y never goes to memory: one launch and one round trip of
// the row less. The rows kernel is built for kCombineRowsCtasPerSm CTAs an SM, as the plain
// combine's (moe_combine.cuh says why).
//
// Both are launched with programmatic dependent launch (pdl.cuh): before its wait a CTA
// prefetches the norm weight into L2 (a weight: nothing in the step writes it); after it, it
// reads expert_out (the experts' kernel before; the rows kernel: the inverse, from the kernel just
// before), the router's weights and sorted pairs and the shared experts' output (joined into the
// stream before this launch), and the residual. With early_inputs (the caller says only
// expert_out and shared_out may still be being written: a decode step's router is two launches
// back; MoeCombineInputs::early_inputs) the scan
// kernel scans its first row's positions and prefetches that row's other inputs into L1 before
// its wait: two dependent L2 trips (the scan, and the norm weight after the row's sum) leave the
// step's serial path.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/moe_combine.cuh"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/reduce.cuh"
#include "ops/cuda/rms_norm.cuh"
#include "ops/cuda/rms_norm_heuristics.h"
#include "ops/cuda/vec.cuh"

namespace mlaserve::ops::gpu {

struct MoeCombineNormParams {
  const __nv_bfloat16* expert_out;  // [P, H] the routed experts' outputs, in sorted order
  const int32_t* sorted_pairs;      // [P] the pair at each sorted position
  const int32_t* position;          // [P] workspace: each pair's sorted position (invert_pairs), rows kernel only
  const float* weights;             // [T, k] router weights
  const __nv_bfloat16* shared_out;  // [T, H] the combine's starting value, or null: zero
  __nv_bfloat16* residual;          // [T, H] the residual stream, updated
  const void* norm_weight;          // [H] f32 or bf16
  __nv_bfloat16* out;               // [T, H] normed
  int64_t tokens;                   // T
  int32_t top_k;                    // k (<= kCombineScanMaxTopK for the scan kernel, kCombineMaxTopK for rows)
  int64_t hidden;                   // H
  float eps;                        // the norm's epsilon
  bool weight_bf16;                 // norm_weight is bf16 (else f32)
  bool prefetch_weight;             // norm_weight 16-byte aligned, a multiple of 16 bytes: prefetched into L2
  NormFp8Out quant;                 // out's FP8 quantisation (kQuant kernels only)
  bool early_inputs;                // MoeCombineInputs::early_inputs (the scan kernel)
  int32_t sum_threads;              // the narrow shape's threads, whose order the sum of squares keeps (kWide)
};

// Before the wait: the norm weight into L2, once per launch.
__device__ __forceinline__ void prefetch_norm_weight(const MoeCombineNormParams& p) {
  if (p.prefetch_weight && threadIdx.x == 0 && blockIdx.x == 0) {  // a weight: no kernel of the step writes it
    prefetch_l2(p.norm_weight, static_cast<uint32_t>(p.hidden * (p.weight_bf16 ? 2 : 4)));
  }
}

// Before the wait, with early_inputs: this thread's first vector of row t's residual, shared_out
// and norm weight, and the row's router weights, into L1 (prefetch.global.L1: no register held
// across the wait, no value read); combine_norm_row's loads of them then hit L1, except
// shared_out's when its writer was still running.
template <int kVec>
__device__ __forceinline__ void prefetch_row_l1(const MoeCombineNormParams& p, int64_t t) {
  const int64_t c = threadIdx.x;
  if (c >= p.hidden / kVec) return;
  prefetch_l1(p.residual + t * p.hidden + c * kVec);
  if (p.shared_out != nullptr) prefetch_l1(p.shared_out + t * p.hidden + c * kVec);
  prefetch_l1(static_cast<const uint8_t*>(p.norm_weight) + c * kVec * (p.weight_bf16 ? 2 : 4));
  if (c == 0) prefetch_l1(p.weights + t * p.top_k);
}

// Steps 1-3 for row t (every thread of the CTA calls it), with combine(c, acc) adding the routed
// experts' terms of vector c to acc in j order. kWide: one thread a vector, the sum of squares in
// the narrow shape's order through vals (wide_row_sum_sq, rms_norm.cuh).
template <int kVec, bool kQuant, bool kWide, typename Combine>
__device__ __forceinline__ void combine_norm_row(const MoeCombineNormParams& p, int64_t t, float* scratch,
                                                 float* vals, Combine combine) {
  const int64_t vectors = p.hidden / kVec;
  const __nv_bfloat16* shared = p.shared_out != nullptr ? p.shared_out + t * p.hidden : nullptr;
  __nv_bfloat16* res = p.residual + t * p.hidden;
  float sum_sq = 0.0f;
  float v[kVec] = {};  // kWide: the thread's vector, after the loop's one round
  for (int64_t c = threadIdx.x; c < vectors; c += blockDim.x) {
    float acc[kVec];
    if (shared != nullptr) {
      load_vec<kVec>(shared + c * kVec, acc);
    } else {
      fill_vec<kVec>(acc, 0.0f);  // moe_combine onto a zeroed y: the same +0.0f start
    }
    combine(c, acc);
    load_vec<kVec>(res + c * kVec, v);
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const float y = __bfloat162float(__float2bfloat16_rn(acc[i]));  // moe_combine's bf16 y
      v[i] = __bfloat162float(__float2bfloat16_rn(v[i] + y));          // add_rms_norm's residual
    }
    store_vec<kVec>(res + c * kVec, v);
    if constexpr (!kWide) {
#pragma unroll
      for (int i = 0; i < kVec; ++i) sum_sq += v[i] * v[i];
    }
  }
  if constexpr (kWide) sum_sq = wide_row_sum_sq<kVec>(v, threadIdx.x < vectors, vals, vectors, p.sum_threads);
  const float inv_rms = row_inv_rms(sum_sq, scratch, p.hidden, p.eps);
  write_normed_row<kVec, kQuant>(
      p.hidden, inv_rms, p.out + t * p.hidden, p.quant, t,
      [&](int64_t c, float(&v)[kVec]) { load_vec<kVec>(res + c * kVec, v); },
      norm_weight_loader<kVec>(p.norm_weight, p.weight_bf16));
}

// grid (min(T, 65535)), block rms_norm_threads(H / kVec) (kWide: rms_norm_wide_threads, one thread
// a vector; rms_norm_heuristics.h); P <= kCombineScanPairs, k <= kCombineScanMaxTopK. Launched with
// launch_programmatic. kQuant: also p.quant (kVec 8).
template <int kVec, bool kQuant, bool kWide>
__global__ void __launch_bounds__(kWide ? kRmsNormWideMaxThreads : kRmsNormMaxThreads)
    moe_combine_add_rms_norm_kernel(MoeCombineNormParams p) {
  constexpr int kThreads = kWide ? kRmsNormWideMaxThreads : kRmsNormMaxThreads;
  __shared__ int32_t scanned[kCombineScanMaxTopK];  // this token's pairs' sorted positions
  __shared__ float scratch[kThreads / 32];
  __shared__ float vals[kWide ? kThreads * kVec : 1];  // kWide: each thread's vector
  prefetch_norm_weight(p);
  const int64_t pairs = p.tokens * p.top_k;
  const bool early = p.early_inputs;  // the CTA's first row (grid <= T), before the wait
  if (early) {
    scan_token_positions(p.sorted_pairs, 0, pairs, blockIdx.x, p.top_k, scanned);
    prefetch_row_l1<kVec>(p, blockIdx.x);
  }
  grid_dependency_wait();  // expert_out, and everything before it, comes from the kernels before
  launch_dependents();
  for (int64_t t = blockIdx.x; t < p.tokens; t += gridDim.x) {
    if (!early || t != blockIdx.x) scan_token_positions(p.sorted_pairs, 0, pairs, t, p.top_k, scanned);
    const float* weights = p.weights + t * p.top_k;
    combine_norm_row<kVec, kQuant, kWide>(p, t, scratch, vals, [&](int64_t c, float(&acc)[kVec]) {
      if constexpr (kWide) {  // 64 registers a thread at 1024 threads: the rows held as loaded (bf16)
        combine_vec_staged<kVec>(p.expert_out, scanned, weights, p.top_k, p.hidden, c, acc);
      } else {
        combine_vec<kVec>(p.expert_out, weights, scanned, p.top_k, p.hidden, c, acc);
      }
    });
    __syncthreads();  // scratch and scanned are rewritten for the next row
  }
}

// grid (min(T, 65535)), block rms_norm_threads(H / kVec); k <= kCombineMaxTopK, p.position from
// invert_pairs. Launched with launch_programmatic. kQuant: also p.quant (kVec 8).
template <int kVec, bool kQuant>
__global__ void __launch_bounds__(kRmsNormMaxThreads, kCombineRowsCtasPerSm)
    moe_combine_add_rms_norm_rows_kernel(MoeCombineNormParams p) {
  __shared__ int32_t position[kCombineMaxTopK];  // this token's pairs' sorted positions (-1: none)
  __shared__ float weight[kCombineMaxTopK];      // and their weights
  __shared__ float scratch[kRmsNormMaxThreads / 32];
  prefetch_norm_weight(p);
  grid_dependency_wait();  // the inverse comes from the kernel before, everything else from earlier ones
  launch_dependents();
  const int64_t pairs = p.tokens * p.top_k;
  for (int64_t t = blockIdx.x; t < p.tokens; t += gridDim.x) {
    stage_row_pairs(p.position, p.sorted_pairs, p.weights, 0, pairs, t, p.top_k, position, weight);
    __syncthreads();
    combine_norm_row<kVec, kQuant, false>(p, t, scratch, nullptr, [&](int64_t c, float(&acc)[kVec]) {
      combine_vec_staged<kVec>(p.expert_out, position, weight, p.top_k, p.hidden, c, acc);
    });
    __syncthreads();  // scratch, position[] and weight[] are rewritten for the next row
  }
}

}  // namespace mlaserve::ops::gpu
