// CUTLASS 4.2's grouped (ptr-array) blockwise-scaled FP8 GEMM as the plain (down-projection)
// epilogue of moe_grouped_gemm_fp8_cuda (ops/moe_experts.h): host entry points, internal to
// src/ops/cuda (and its benchmark and test). MoeFp8Kernel::kCutlassGrouped forces it; kAuto takes
// it at a mean of 128 rows per expert and past 256 (use_cutlass_grouped in moe_grouped_gemm_fp8_sm90.h).
//
//   out[r, j] bf16 = Σ_g (a_q[r, g-th 128 columns] · b_q[e, j, same]) · a_scales[r, g] · b_scales[e, j/128, g]
//   for every row r of expert e, r in [offsets[e], offsets[e + 1]) (clamped to [0, P])
//
// One CUTLASS group per expert, problem (M_e, N, K) with M_e = offsets[e + 1] - offsets[e] read on
// the device: a small kernel (fill_group_arguments in moe_cutlass_grouped.cuh, shared with the
// BF16 grouped GEMM) writes the per-group arrays CUTLASS reads (problem shapes, A/B/D and scale
// pointers, strides, scale layouts) into a workspace, and CUTLASS's kernel runs with device-only
// problem shapes (grid = one CTA per SM, the group scheduler walks the groups' tiles on the
// device). No host
// synchronisation: capturable in a CUDA graph after one eager call (the workspace comes from the
// stream-ordered caching allocator, as moe_experts_fp8_cuda's quantised copies do).
//
// Layouts, all as our tensors hold them (no copy, no transpose):
//   A = a_q[offsets[e]:]     [M_e, K] row-major e4m3 (CUTLASS: RowMajor M x K)
//   B = b_q[e]               [N, K] row-major e4m3 (CUTLASS: ColumnMajor K x N)
//   SFA = a_scales[offsets[e]:] [M_e, K/128] f32, K-major (Sm90BlockwiseScaleConfig<1, 128, 128,
//                            K, K>); CUTLASS's example 68 uses M-major SFA. The ptr-array mainloop
//                            loads both scale tensors with cp.async from 32 producer lanes,
//                            predicated on M_e, either major; a [K/128, P] transpose (what M-major
//                            would need) would cost one extra pass over P·K/128·4 bytes (1 MB at
//                            the bench shape, ~1 us) plus a launch, so it is not taken.
//   SFB = b_scales[e]        [N/128, K/128] f32, K-major: the checkpoint's weight_scale_inv.
//   D = out[offsets[e]:]     [M_e, N] row-major bf16, stored by TMA clipped at M_e: rows of
//                            other experts and rows outside [offsets[0], offsets[E]) untouched.
// Empty experts (M_e = 0) are groups of no tiles: the group scheduler's prefix sum over the
// groups' tile counts skips them; their pointers are never dereferenced.
//
// Constraints (checked with a message): the plain epilogue only (SwiGLU stays on our kernels),
// K and N multiples of 128, a_q/b_q/out 16-byte aligned (TMA), bf16 output.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/cuda/moe_cutlass_grouped.h"
#include "ops/cuda/moe_grouped_gemm_fp8_sm89_params.h"

namespace mlaserve::ops::sm90::moe_fp8_cutlass {

// The one instantiation (moe_grouped_gemm_fp8_cutlass_coop.cu):
// KernelPtrArrayTmaWarpSpecializedCooperativeFP8BlockScaledAccum, 128 x 128 x 128 tiles, two
// consumer warpgroups on one tile (64 rows each), clusters 1 x 2 (the pair shares the A tile by TMA
// multicast). Why this schedule: bench/NOTES-fp8-gemm.md.

// Enqueues the grouped GEMM of p (plain epilogue: p.n_out == p.b_rows) on stream: the argument
// kernel, then CUTLASS's. Host work: three TMA descriptors, the kernel's shared-memory attribute,
// one workspace from the caching allocator (sm_count · 384 bytes of tensormaps + ~160 bytes a
// group). Throws when CUTLASS refuses the arguments or a launch fails. Nothing when P = 0.
// options: the group scheduler's walk (moe_cutlass_grouped.h). Defined in
// moe_grouped_gemm_fp8_cutlass_coop.cu.
void moe_grouped_gemm_fp8_cutlass(const sm89::MoeFp8GemmParams& p, const cutlass_grouped::Options& options,
                                  cudaStream_t stream);

}  // namespace mlaserve::ops::sm90::moe_fp8_cutlass
