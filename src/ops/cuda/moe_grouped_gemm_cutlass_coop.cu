// CUTLASS's grouped BF16 GEMM, cooperative schedule (moe_grouped_gemm_cutlass.h): 128 x 256 x 64
// tiles, clusters 1 x 2 (why: the header). This TU holds the one instantiation and nothing else.
#include "ops/cuda/moe_grouped_gemm_cutlass.cuh"

namespace mlaserve::ops::sm90::moe_cutlass {

using Cooperative = GroupedBf16Gemm<cute::Shape<cute::_128, cute::_256, cute::_64>, cute::Shape<cute::_1, cute::_2, cute::_1>,
                                    cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative,
                                    cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative>;

void moe_grouped_gemm_cutlass(const sm80::MoeGemmParams& p, const cutlass_grouped::Options& options,
                              cudaStream_t stream) {
  run_grouped_gemm<Cooperative>(p, options, stream);
}

}  // namespace mlaserve::ops::sm90::moe_cutlass
