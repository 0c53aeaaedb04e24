// Grouped block-FP8 MoE GEMM, Hopper prefill configuration (moe_grouped_gemm_fp8_sm90.cuh): the
// tile constants the dispatch needs, the rule that picks it and its launch. Host side.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

#include "ops/cuda/moe_grouped_gemm_fp8_sm89_params.h"

namespace mlaserve::ops::sm90::moe_fp8 {

constexpr int kBM = 128;  // rows per tile (two m64 consumer warpgroups)

// Weight rows per tile: 128 or 256 (SwiGLU: half gate rows, half the up rows of the same
// channels). Pipeline stages of 16 KB (A) + 128·BN bytes (B): six of 32 KB or four of 48 KB.
constexpr int stages(int bn) { return bn == 128 ? 6 : 4; }

// Dynamic shared memory of one CTA for tile width bn and E experts (stages, barriers, M-tile
// prefix, alignment).
constexpr int64_t smem_bytes(int bn, int64_t experts) {
  return stages(bn) * (int64_t{128} * (kBM + bn) + 16) + 4 * (experts + 1) + 1024;
}
constexpr int64_t max_experts() {
  return (227 * 1024 - std::max(smem_bytes(128, 0), smem_bytes(256, 0))) / 4;
}

// The host knows only P and E (the split over experts stays on the device), so the rules go by
// the mean rows per active expert, P / min(E, P). Measured on the H200 (bench/moe_fp8_bench.cu,
// bench/NOTES-fp8-gemm.md, V3 and V2-Lite gate_up and down, uniform routing):
//   - wgmma against the mma.sync kernel (moe_grouped_gemm_fp8_sm89.cuh): equal or faster from a
//     mean of 12 rows (V2-Lite gate_up 129 vs 132 us, down 63 vs 86), 1.2-2.6x from 16 to 64
//     (there the weights dominate: 0.86-0.95 of the HBM floor), ~3x above. Below 12 the
//     mma.sync kernel's 16-row decode tiles stream the weights with many more CTAs.
//   - BN = 256 against 128: better for gate_up at every mean (V3 T 4096: 2295 vs 2581 us), for
//     down only from 128 rows (V3 T 16384: 4754 vs 5297 us; at 64: 1120 vs 1008).
inline int64_t mean_rows(int64_t rows, int64_t experts) {
  const int64_t active = std::max<int64_t>(1, std::min(rows, experts));
  return (rows + active - 1) / active;
}

// Whether the plain grouped FP8 GEMM (the down projection) runs CUTLASS's grouped cooperative
// kernel (moe_grouped_gemm_fp8_cutlass.h) rather than this one: at a mean of one whole 128-row
// tile an expert and past two, where its persistent 128x128 tiles beat the wgmma kernel's best tile
// on the H200 (moe_fp8_bench --sections shapes: V3 T 4096, 128 rows: 1242 vs 1381 us; T 16384, 512:
// 4364-4466 vs 4850-4926; V2-Lite T 4096, 384: 191-197 vs 208-210; T 16384 634-646 vs 724-758).
// Not below one tile (V3 T 2048, 64 rows: 1207-1217 vs 1059-1078; V2-Lite T 1024, 96: 88 vs 82) and
// not between one and two, where this kernel's walk reads an expert's weight tile from HBM once
// for both of its row tiles (the pair swap of moe_grouped_gemm_fp8_sm90.cuh) and runs faster
// (V2-Lite T 1600, 150 rows: 103-106 vs 132-138; T 2400, 225: 131 vs 140; V3 T 6144, 192: 2110-2138
// vs 2357-2389; 2026-11-30; random top-k routing: V2-Lite T 1600 107-108 vs 131-136, T 2048 122-124 vs
// 133-138, V3 T 6144 2390-2405 vs 2364-2449).
inline bool use_cutlass_grouped(bool swiglu, int64_t rows, int64_t experts) {
  const int64_t mean = mean_rows(rows, experts);
  return !swiglu && (mean == 128 || mean > 256);
}

// Whether the grouped FP8 GEMM runs this kernel rather than the mma.sync one.
inline bool use_wgmma(int64_t rows, int64_t experts) { return mean_rows(rows, experts) >= 12; }

// The tile width for output width n_out (Im with SwiGLU, else N): 256 for SwiGLU or from 128 rows
// per expert, where n_out allows (SwiGLU: 128 channels a tile), else 128.
inline int choose_bn(int64_t n_out, bool swiglu, int64_t rows, int64_t experts) {
  if (n_out % (swiglu ? 128 : 256) != 0) return 128;
  return swiglu || mean_rows(rows, experts) >= 128 ? 256 : 128;
}

// The tile a persistent CTA takes in round `round` of its walk (t = blockIdx.x + round · stride <
// tiles, stride = gridDim.x): on odd rounds t's pair partner t ^ 1 (moe_grouped_gemm_fp8_sm90.cuh
// says why), when the stride is even (a round then holds whole pairs) and the partner exists.
// Over all CTAs and rounds every tile is taken exactly once.
__host__ __device__ constexpr int pair_swapped(int t, int round, int stride, int tiles) {
  const int partner = t ^ 1;
  return (round & 1) != 0 && stride % 2 == 0 && partner < tiles ? partner : t;
}

// One grouped GEMM (plain or with the fused SwiGLU epilogue) over all experts with tile width bn
// (128 or 256); the parameters as moe_grouped_gemm_fp8_cuda builds them (n_tiles is set here).
// Needs K and b_rows multiples of 128, n_out a multiple of bn (plain) or bn / 2 (SwiGLU),
// E <= max_experts().
void moe_grouped_gemm_fp8_sm90(sm89::MoeFp8GemmParams p, bool swiglu, int bn, cudaStream_t stream);

}  // namespace mlaserve::ops::sm90::moe_fp8
