// The sm90 swap-AB FP8 GEMM with token tile BN = 16, one and two consumer warpgroups
// (linear_fp8_sm90.cuh), in a translation unit of its own.
#include "ops/cuda/linear_fp8_sm90.cuh"

namespace mlaserve::ops::sm90_fp8 {
template void launch_swap_ab<16, 1>(const SwapAbParams&, const SwapAbPlan&, cudaStream_t);
template void launch_swap_ab<16, 2>(const SwapAbParams&, const SwapAbPlan&, cudaStream_t);
template int swap_ab_max_active_clusters<16, 1>(int);
template int swap_ab_max_active_clusters<16, 2>(int);
}  // namespace mlaserve::ops::sm90_fp8
