// Grouped block-FP8 MoE GEMM, Hopper prefill configuration (moe_grouped_gemm_fp8_sm90.cuh): the
// tile constants the dispatch needs, the rule that picks it and its launch. Host side.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

#include "ops/cuda/moe_grouped_gemm_fp8_sm89_params.h"

namespace mlaserve::ops::sm90::moe_fp8 {

constexpr int kBM = 128;     // rows per tile (two m64 consumer warpgroups)
constexpr int kBN = 128;     // weight rows per tile (SwiGLU: 64 gate + the 64 up rows of the same channels)
constexpr int kStages = 6;   // 32 KB each: one 128-wide K group of A [128 x 128] and B [128 x 128]

// Dynamic shared memory of one CTA for E experts (stages, barriers, M-tile prefix, alignment).
constexpr int64_t smem_bytes(int64_t experts) { return kStages * (32 * 1024 + 16) + 4 * (experts + 1) + 1024; }

// When the grouped FP8 GEMM runs this kernel rather than the mma.sync one
// (moe_grouped_gemm_fp8_sm89.cuh). As there, the host knows only P and E, so the rule goes by
// the mean rows per active expert, P / min(E, P): above 64 both kernels use 128-row tiles (the
// mma.sync kernel's kPrefill) and the wgmma kernel does the same work on Hopper's tensor cores
// at their full rate; at <= 64 the mma.sync kernel's 16- and 64-row tiles waste less.
inline bool use_wgmma(int64_t rows, int64_t experts) {
  const int64_t active = std::max<int64_t>(1, std::min(rows, experts));
  return (rows + active - 1) / active > 64;
}

// One grouped GEMM (plain or with the fused SwiGLU epilogue) over all experts; the parameters as
// moe_grouped_gemm_fp8_cuda builds them (n_tiles is set here). Needs K and b_rows multiples of
// 128, n_out a multiple of 128 (plain) or 64 (SwiGLU), E <= max_experts().
void moe_grouped_gemm_fp8_sm90(sm89::MoeFp8GemmParams p, bool swiglu, cudaStream_t stream);

constexpr int64_t max_experts() { return (227 * 1024 - smem_bytes(0)) / 4; }

}  // namespace mlaserve::ops::sm90::moe_fp8
