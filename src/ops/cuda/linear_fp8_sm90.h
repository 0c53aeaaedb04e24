// Host-side entry points of the sm90 FP8 GEMM kernels (linear_fp8_sm90.cuh); internal to
// src/ops/cuda (and its benchmark and test, which time and check every plan). The swap-AB kernel
// has one instantiation per (token tile, warpgroups), each in its own translation unit
// (linear_fp8_sm90_n{16,64,128}.cu hold both warpgroup counts, n64 also the three-CTA form) so
// that they compile in parallel.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/cuda/linear_fp8_heuristics.h"
#include "ops/cuda/linear_fp8_sm90_params.h"

namespace mlaserve::ops::sm90_fp8 {

// Launches the kernel with token tile BN and WGS consumer warpgroups (kThree: its 4-stage form
// at three CTAs an SM, plan.three_per_sm) on a grid of plan.ctas x 1 x plan.splits (clusters of
// 1 x 1 x splits).
template <int BN, int WGS, bool kThree = false>
void launch_swap_ab(const SwapAbParams& p, const SwapAbPlan& plan, cudaStream_t stream);

extern template void launch_swap_ab<16, 1>(const SwapAbParams&, const SwapAbPlan&, cudaStream_t);
extern template void launch_swap_ab<16, 2>(const SwapAbParams&, const SwapAbPlan&, cudaStream_t);
extern template void launch_swap_ab<64, 1>(const SwapAbParams&, const SwapAbPlan&, cudaStream_t);
extern template void launch_swap_ab<64, 2>(const SwapAbParams&, const SwapAbPlan&, cudaStream_t);
extern template void launch_swap_ab<64, 1, true>(const SwapAbParams&, const SwapAbPlan&, cudaStream_t);
extern template void launch_swap_ab<128, 1>(const SwapAbParams&, const SwapAbPlan&, cudaStream_t);
extern template void launch_swap_ab<128, 2>(const SwapAbParams&, const SwapAbPlan&, cudaStream_t);

// Clusters of `splits` CTAs of that kernel the GPU holds at once (cudaOccupancyMaxActiveClusters:
// the driver places a cluster inside one GPC, so a GPC whose CTA slots are not a multiple of the
// cluster size leaves slots empty).
template <int BN, int WGS, bool kThree = false>
int swap_ab_max_active_clusters(int splits);

extern template int swap_ab_max_active_clusters<16, 1>(int);
extern template int swap_ab_max_active_clusters<16, 2>(int);
extern template int swap_ab_max_active_clusters<64, 1>(int);
extern template int swap_ab_max_active_clusters<64, 2>(int);
extern template int swap_ab_max_active_clusters<64, 1, true>(int);
extern template int swap_ab_max_active_clusters<128, 1>(int);
extern template int swap_ab_max_active_clusters<128, 2>(int);

// The same for a plan's kernel and split (plan.splits CTAs a cluster).
int swap_ab_max_active_clusters(const SwapAbPlan& plan);

// The current device's SwapAbGpu (linear_fp8_heuristics.h), asked of the driver once per device;
// beside: its share beside another kernel (kBesideHeldPercent).
const SwapAbGpu& swap_ab_gpu(bool beside = false);

struct Fp8GemmPointers {
  const void* x_q;         // [T, K] e4m3
  const float* x_scales;   // [T, G]
  const void* w_q;         // [N, K] e4m3
  const float* w_scales;   // [ceil(N/128), G]
  void* out;               // [T, N] bf16, or f32 when out_f32
  bool out_f32 = false;
};

// The whole swap-AB GEMM with a plan (from plan_swap_ab or swap_ab_candidates for the same
// T, N, K): tensor maps and launch. Shapes are checked by the caller (linear_fp8_cuda.cc).
void run_swap_ab(const Fp8GemmPointers& ptrs, int64_t t, int64_t n, int64_t k, const SwapAbPlan& plan,
                 cudaStream_t stream);

// in [rows, cols] f32 -> out [cols, rows] f32.
void transpose_f32(const float* in, float* out, int64_t rows, int64_t cols, cudaStream_t stream);

}  // namespace mlaserve::ops::sm90_fp8
