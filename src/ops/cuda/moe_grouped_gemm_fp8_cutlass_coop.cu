// CUTLASS's grouped blockwise FP8 GEMM, cooperative schedule (moe_grouped_gemm_fp8_cutlass.h):
// 128 x 128 x 128 tiles, clusters 1 x 2. This TU holds the one instantiation and nothing else.
#include "ops/cuda/moe_grouped_gemm_fp8_cutlass.cuh"

namespace mlaserve::ops::sm90::moe_fp8_cutlass {

using Cooperative = GroupedFp8Gemm<cute::Shape<cute::_128, cute::_128, cute::_128>, cute::Shape<cute::_1, cute::_2, cute::_1>,
                                   cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperativeFP8BlockScaledAccum,
                                   cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>;

void moe_grouped_gemm_fp8_cutlass(const sm89::MoeFp8GemmParams& p, const cutlass_grouped::Options& options,
                                  cudaStream_t stream) {
  run_grouped_gemm<Cooperative>(p, options, stream);
}

}  // namespace mlaserve::ops::sm90::moe_fp8_cutlass
