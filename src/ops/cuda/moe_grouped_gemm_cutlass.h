// CUTLASS 4.2's grouped (ptr-array) BF16 GEMM for the routed experts at prefill sizes: the host
// entry point behind MoeBf16Kernel::kCutlassGrouped of moe_grouped_gemm_cuda (ops/moe_experts.h),
// internal to src/ops/cuda (and its benchmark and test). Opt-in: kAuto does not take it (the
// Hopper wgmma kernel, moe_grouped_gemm_sm90.cuh, runs the prefill sizes).
//
//   out[r, j] bf16 = Σ_κ a[r, κ] · b[e, j, κ]   (fp32 accumulation, rounded once)
//   for every row r of expert e, r in [offsets[e], offsets[e + 1]) (clamped to [0, P])
//
// The plain product only. moe_grouped_gemm_cuda runs SwiGLU (gate_up) as this GEMM into a
// [P, 2·Im] workspace followed by silu_mul over the experts' rows (silu_mul_rows_cuda): gate and up
// are rounded to bf16 before silu(g)·u, where the fused epilogue of our kernels rounds only the
// product (the error budget: ops/moe_experts.h at MoeBf16Kernel).
//
// Everything but the types is shared with the FP8 grouped GEMM (moe_cutlass_grouped.cuh): one
// CUTLASS group per expert, the per-group arrays filled on the device from expert_offsets (no host
// synchronisation: capturable in a CUDA graph after one eager call), a persistent grid of
// cudaOccupancyMaxActiveClusters clusters, the tiles clipped at M_e so that rows of other experts
// and rows outside [offsets[0], offsets[E]) stay untouched, empty experts groups of no tiles.
//
// Layouts, as our tensors hold them (no copy, no transpose):
//   A = a[offsets[e]:]   [M_e, K] row-major bf16 (CUTLASS: RowMajor M x K)
//   B = b[e]             [N, K] row-major bf16 (CUTLASS: ColumnMajor K x N)
//   D = out[offsets[e]:] [M_e, N] row-major bf16
//
// Constraints (checked with a message): K and N multiples of 8 (16-byte TMA rows), a/b/out
// 16-byte aligned (TMA), p.n_out == p.b_rows.
#pragma once

#include <cuda_runtime_api.h>

#include "ops/cuda/moe_cutlass_grouped.h"
#include "ops/cuda/moe_grouped_gemm_sm80_params.h"

namespace mlaserve::ops::sm90::moe_cutlass {

// The one instantiation (moe_grouped_gemm_cutlass_coop.cu): KernelPtrArrayTmaWarpSpecialized
// Cooperative, 128 x 256 x 64 tiles (the wgmma kernel's: two consumer warpgroups of 64 rows x 256
// columns, 128 fp32 accumulators a thread), 4 stages of 48 KB, clusters 1 x 2. Why 1 x 2 and not
// 2 x 1: the group scheduler rounds each group's tile counts up to the cluster's shape, and the
// padding tiles run the whole main loop on zeros. 2 x 1 pads every expert with an odd number of
// M tiles: at prefill sizes (tens to a few hundred rows an expert) about half of them, up to twice
// the work at <= 128 rows (V3 at T 4096: 128 rows an expert); 1 x 2 pads N only, which depends on
// the shape, not the routing: none at V3 (16 and 28 N tiles) or V2-Lite's down (8), 1 in 12 at
// V2-Lite's gate_up (11 N tiles). The pair shares the A tile (the activations) by TMA multicast,
// as the FP8 instantiation's does.

// Enqueues the grouped GEMM of p (plain: p.n_out == p.b_rows; p.n_tiles unused) on stream: the
// argument kernel, then CUTLASS's. Host work: three TMA descriptors, the kernel's shared-memory
// attribute, one workspace from the caching allocator (sm_count · 384 bytes of tensormaps + ~60
// bytes a group). Throws when CUTLASS refuses the arguments or a launch fails. Nothing when
// P = 0. options: the group scheduler's walk (moe_cutlass_grouped.h). Defined in
// moe_grouped_gemm_cutlass_coop.cu.
void moe_grouped_gemm_cutlass(const sm80::MoeGemmParams& p, const cutlass_grouped::Options& options,
                              cudaStream_t stream);

}  // namespace mlaserve::ops::sm90::moe_cutlass
