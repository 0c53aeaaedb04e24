// Grouped BF16 MoE GEMM, Hopper prefill configuration (moe_grouped_gemm_sm90.cuh): the tile
// constants the dispatch needs and the launch of the expert layer's two GEMMs. Host side;
// chosen by moe_grouped_gemm_sm80_heuristics.h (kPrefillWgmma).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/cuda/moe_grouped_gemm_sm80_params.h"

namespace mlaserve::ops::sm90::moe {

constexpr int kBM = 128;     // rows per tile (two m64 warpgroups)
constexpr int kBN = 256;     // weight rows per tile (gate_up: 128 gate + 128 up channels)
constexpr int kStages = 4;   // 48 KB each

// Dynamic shared memory of one CTA for E experts (stages, barriers, M-tile prefix, alignment).
constexpr int64_t smem_bytes(int64_t experts) { return kStages * (48 * 1024 + 16) + 4 * (experts + 1) + 1024; }

// The gate_up GEMM with the fused SwiGLU epilogue, then the down GEMM (parameters as built by
// moe_experts_cuda; n_tiles is set here). Needs Im a multiple of 128, H of 256, both of 64 (K).
void moe_gemms_sm90(sm80::MoeGemmParams gate_up, sm80::MoeGemmParams down, cudaStream_t stream);

}  // namespace mlaserve::ops::sm90::moe
