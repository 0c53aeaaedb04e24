// The Hopper grouped block-FP8 MoE GEMM with 256-row weight tiles, both epilogues
// (moe_grouped_gemm_fp8_sm90.cuh), in a translation unit of its own.
#include "ops/cuda/moe_grouped_gemm_fp8_sm90.cuh"

namespace mlaserve::ops::sm90::moe_fp8 {
template void launch<256>(const Params&, bool, int, cudaStream_t);
}  // namespace mlaserve::ops::sm90::moe_fp8
