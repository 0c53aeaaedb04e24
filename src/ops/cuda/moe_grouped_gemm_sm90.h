// Grouped BF16 MoE GEMM, Hopper prefill configuration (moe_grouped_gemm_sm90.cuh): the tile
// shapes the dispatch needs and the launch of one of the expert layer's two GEMMs. Host side;
// chosen by moe_grouped_gemm_sm80_heuristics.h (kPrefillWgmma: 128 x 256 tiles; use_wgmma_m192:
// 192 x 128 for gate_up at 129 .. 192 rows an expert) or forced (MoeBf16Kernel::kWgmma or
// kWgmmaM192: ops/moe_experts.h).
//
// Why two tile shapes: the kernel is fed from L2 (48 KB a stage for 128 x 256), not bound by the
// wgmma, so a tail M tile of a few rows costs as much as a full one. At 129 .. 192 rows an expert
// (~150 at the throughput workload) the 128-row tile loads every weight tile twice (a full tile
// and a tail); the 192-row tile loads it once. It has three m64 warpgroups and 128 weight rows:
// 192 x 256 would need 56 KB stages (4 of them exceed the 227 KB) and 128 accumulators a thread
// of the 416-thread CTA (<= 152 registers each). Measured on an H200 (the heuristics' note):
// 10-15% faster on gate_up in that window, no faster on the plain down product.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

#include "ops/cuda/moe_grouped_gemm_sm80_params.h"

namespace mlaserve::ops::sm90::moe {

// One tile shape of the kernel: BM rows (BM / 64 consumer warpgroups, m64 each) x BN weight rows
// (one wgmma m64nBNk16 a warpgroup; SwiGLU: BN/2 gate + BN/2 up channels) x 64 K, Stages stages.
template <int BM, int BN, int Stages>
struct TileShape {
  static constexpr int kBM = BM;
  static constexpr int kBN = BN;
  static constexpr int kStages = Stages;
  static constexpr int kStageBytes = (BM + BN) * 128;  // A [BM][64] + B [BN][64] bf16
  // Dynamic shared memory of one CTA for E experts (stages, barriers, M-tile prefix, alignment).
  static constexpr int64_t smem_bytes(int64_t experts) {
    return int64_t{Stages} * (kStageBytes + 16) + 4 * (experts + 1) + 1024;
  }
};
using Tile128x256 = TileShape<128, 256, 4>;  // 48 KB a stage, two consumer warpgroups
using Tile192x128 = TileShape<192, 128, 5>;  // 40 KB a stage, three consumer warpgroups

enum class Bf16Tile : uint8_t { k128x256, k192x128 };

// The larger tile's shared memory for E experts (the experts the dispatch admits).
constexpr int64_t max_smem_bytes(int64_t experts) {
  return std::max(Tile128x256::smem_bytes(experts), Tile192x128::smem_bytes(experts));
}

// One grouped GEMM: gate_up with the fused SwiGLU epilogue (swiglu) or the plain product (down),
// parameters as moe_experts_cuda and moe_grouped_gemm_cuda build them (n_tiles is set here).
// Needs n_out a multiple of the tile's output columns (SwiGLU: Im of BN/2; plain: N of BN), K of
// 64.
void moe_grouped_gemm_sm90(sm80::MoeGemmParams p, bool swiglu, Bf16Tile tile, cudaStream_t stream);

}  // namespace mlaserve::ops::sm90::moe
