// Grouped BF16 MoE GEMM, Hopper prefill configuration (moe_grouped_gemm_sm90.cuh): the tile
// constants the dispatch needs and the launch of one of the expert layer's two GEMMs. Host side;
// chosen by moe_grouped_gemm_sm80_heuristics.h (kPrefillWgmma) or forced (MoeBf16Kernel::kWgmma,
// ops/moe_experts.h).
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

// One grouped GEMM: gate_up with the fused SwiGLU epilogue (swiglu) or the plain product (down),
// parameters as moe_experts_cuda and moe_grouped_gemm_cuda build them (n_tiles is set here).
// Needs n_out a multiple of 128 (SwiGLU: Im) or 256 (plain), K of 64.
void moe_grouped_gemm_sm90(sm80::MoeGemmParams p, bool swiglu, cudaStream_t stream);

}  // namespace mlaserve::ops::sm90::moe
