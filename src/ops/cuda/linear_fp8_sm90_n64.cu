// The sm90 swap-AB FP8 GEMM with token tile BN = 64, one and two consumer warpgroups, and one
// warpgroup at three CTAs an SM (linear_fp8_sm90.cuh), in a translation unit of its own.
#include "ops/cuda/linear_fp8_sm90.cuh"

namespace mlaserve::ops::sm90_fp8 {
template void launch_swap_ab<64, 1>(const SwapAbParams&, const SwapAbPlan&, cudaStream_t);
template void launch_swap_ab<64, 2>(const SwapAbParams&, const SwapAbPlan&, cudaStream_t);
template void launch_swap_ab<64, 1, true>(const SwapAbParams&, const SwapAbPlan&, cudaStream_t);
template int swap_ab_max_active_clusters<64, 1>(int);
template int swap_ab_max_active_clusters<64, 2>(int);
template int swap_ab_max_active_clusters<64, 1, true>(int);
}  // namespace mlaserve::ops::sm90_fp8
