// CUTLASS's grouped blockwise FP8 GEMM, pingpong schedule (moe_grouped_gemm_fp8_cutlass.h): 64 x
// 128 x 128 tiles (one consumer warpgroup a tile: 64 accumulator and 64 promotion registers a
// thread; 128-row tiles would need 256), clusters 1 x 2. This TU holds the one instantiation.
#include "ops/cuda/moe_grouped_gemm_fp8_cutlass.cuh"

namespace mlaserve::ops::sm90::moe_fp8_cutlass {

using Pingpong = GroupedFp8Gemm<cute::Shape<cute::_64, cute::_128, cute::_128>, cute::Shape<cute::_1, cute::_2, cute::_1>,
                                cutlass::gemm::KernelPtrArrayTmaWarpSpecializedPingpongFP8BlockScaledAccum,
                                cutlass::epilogue::PtrArrayTmaWarpSpecializedPingpong>;

void run_pingpong(const sm89::MoeFp8GemmParams& p, const Options& options, cudaStream_t stream) {
  run_grouped_gemm<Pingpong>(p, options, stream);
}

}  // namespace mlaserve::ops::sm90::moe_fp8_cutlass
