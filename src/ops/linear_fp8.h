// FP8 W8A8 linear layer with DeepSeek's block scaling (MODEL_SPEC §6.3): the exact CPU reference
// for the GPU's blockwise-scaled FP8 GEMMs (DeepGEMM / CUTLASS / cuBLASLt BLK128x128).
//
//   x_q          [T, K]                     f8e4m3   (fp8_quant.h)
//   x_scales     [T, ceil(K/128)]           f32
//   w_q          [N, K]                     f8e4m3   (fp8_block.h)
//   w_scale_inv  [ceil(N/128), ceil(K/128)] f32
//   out          [T, N]                     f32, caller-allocated:
//     out[t, o] = Σ_g ( Σ_{κ∈g} x_q[t, κ]·w_q[o, κ] ) · (x_scales[t, g] · w_scale_inv[o/128, g])
//
// Each 128-wide K group is summed in fp32 on its own (products of two e4m3 values are exact in
// fp32), then scaled and added to the fp32 total: the promotion scheme of DeepGEMM, whose
// tensor-core partial sums are only ~fp22 within a group, so the GPU matches this reference to
// accumulation-order error, not bitwise.
//
// linear_fp8_cpu is what the model graph calls for an FP8 weight: it quantises x (f32 [T, K])
// with `act` and runs the W8A8 product above.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"
#include "ops/fp8_quant.h"
#include "ops/grid_placement.h"

namespace mlaserve::ops {

void linear_fp8_w8a8_cpu(const Tensor& x_q, const Tensor& x_scales, const Tensor& w_q,
                         const Tensor& w_scale_inv, Tensor& out);

void linear_fp8_cpu(const Tensor& x, const Tensor& w_q, const Tensor& w_scale_inv,
                    const ActQuantParams& act, Tensor& out);

// Dispatch by device (ops/dispatch.h): the model graph calls these. `placement`
// (ops/grid_placement.h): kBeside where a kernel on another stream holds part of the GPU meanwhile
// (the model's side stream: kv_a_proj beside the query's first projection). The GPU's swap-AB plan
// reads it: a split that counts on every cluster slot would run part of its clusters in a second
// wave beside the other kernel.
void linear_fp8(const Tensor& x, const Tensor& w_q, const Tensor& w_scale_inv, const ActQuantParams& act, Tensor& out,
                Stream stream = {}, GridPlacement placement = GridPlacement::kAlone);

// The W8A8 product of already quantised activations (out f32 on the CPU, bf16 or f32 on the GPU).
void linear_fp8_w8a8(const Tensor& x_q, const Tensor& x_scales, const Tensor& w_q, const Tensor& w_scale_inv,
                     Tensor& out, Stream stream = {});
// The same of an activation its producer quantised (Fp8Activations: a norm's FP8 form,
// ops/rms_norm_fp8.h): x.x_q with x.scales, and on the GPU's cuBLASLt path x.scales_t when it is
// defined (the scales already in cuBLASLt's layout: no transpose pass).
void linear_fp8_w8a8(const Fp8Activations& x, const Tensor& w_q, const Tensor& w_scale_inv, Tensor& out,
                     Stream stream = {}, GridPlacement placement = GridPlacement::kAlone);

// SwiGLU, then the W8A8 product: an MLP's FP8 down projection on its gate_up output.
//   gate_up  [T, 2·K]  (ops/silu_mul.h's fused layout: gate [0, K), up [K, 2K)); f32 on the CPU, bf16 on the GPU
//   w_q      [N, K] e4m3, w_scale_inv [ceil(N/128), ceil(K/128)] f32
//   out      [T, N]
// out = linear_fp8(silu(gate)·up) quantised with `act`: on the CPU silu_mul_cpu then
// linear_fp8_cpu, on the GPU silu_mul_linear_fp8_cuda (below). `placement` as linear_fp8's.
void silu_mul_linear_fp8_cpu(const Tensor& gate_up, const Tensor& w_q, const Tensor& w_scale_inv,
                             const ActQuantParams& act, Tensor& out);

void silu_mul_linear_fp8(const Tensor& gate_up, const Tensor& w_q, const Tensor& w_scale_inv, const ActQuantParams& act,
                         Tensor& out, Stream stream = {}, GridPlacement placement = GridPlacement::kAlone);

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

#include <cstdint>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/linear_fp8_* (kernels) and cuBLASLt (ops/cuda/cublaslt_gemm.h) -------
//
// linear_fp8_w8a8_cuda: the product of linear_fp8_w8a8_cpu on GPU tensors, out [T, N] bf16 (the
// fp32 total rounded once) or f32 (the total as summed: a tensor-parallel partial output that is
// all-reduced before it is rounded; both kernels below write either). x_q [T, K] e4m3,
// x_scales [T, ceil(K/128)] f32, w_q [N, K] e4m3, w_scale_inv [ceil(N/128), ceil(K/128)] f32, all
// contiguous; K a multiple of 16 (the row pitch of a TMA copy); N any (kv_a_proj's 576 ends in a
// half block).
// Each 128-wide K group is summed by the tensor cores (fp8 products, ~fp22 sums inside a group),
// multiplied by x_scale·w_scale and added to an fp32 total, as the reference does.
//
// Kernels (ops/cuda/linear_fp8_heuristics.h picks one per shape with kAuto):
//   kGemv        ours (linear_fp8_gemv.cuh): CUDA cores, one pass over the weight, for T <= 4 and
//                K a multiple of 16 (decode); kAuto takes it at one token (N·K <= 48M), two
//                (<= 12M) or up to four on the smallest weights.
//   kSm90SwapAB  ours (linear_fp8_sm90.cuh): the weight is wgmma's M side, tokens its N side, so
//                decode batches stream the weights once; K split over a thread-block cluster and
//                reduced through distributed shared memory, or persistent CTAs walking the tiles.
//                Any T, N; kAuto takes it at T <= 16, and at T <= 128 when N < 2048.
//   kGemvMma     ours (linear_fp8_gemv_mma.cuh): the decode GEMV on the tensor cores (mma.sync
//                m16n8k32 e4m3 with the weight rows as A), one pass over the weight, T <= 8 and K a
//                multiple of 16. kAuto takes it at 2-8 tokens while T·K <= 24576, and at one
//                token on quantised x (linear_fp8_w8a8_cuda).
//   kCublasLt    cuBLASLt's block-scaled FP8 (BLK128x128 weights, VEC128 activations). Needs N a
//                multiple of 8, ceil(K/128) of 4, and T of 4: past 4 tokens another T runs as
//                cuBLASLt on T & ~3 rows and kAuto on the last 1-3 (kAuto does so where only T % 4
//                keeps cuBLASLt out and the split pays: lt_split_pays, linear_fp8_heuristics.h,
//                holds the thresholds and their measurements). The activation scales are
//                transposed to [ceil(K/128), T] into a workspace first (cuBLASLt's layout), unless
//                the caller has them so (Fp8Activations::scales_t).
//   kOneGroup    the grouped MoE FP8 GEMM (moe_grouped_gemm_fp8_cuda, ops/moe_experts.h) with the
//                whole batch as one group: N and K multiples of 128, bf16 out. kAuto takes it past
//                128 tokens where cuBLASLt refuses the shape (V2-Lite's K = 2816).
//
// Asynchronous on stream; no host synchronisation. Allocation: the first call on a (thread,
// device, stream) allocates a 4 MiB scale workspace and cuBLASLt its handle and workspace; run
// each shape once before capturing it in a CUDA graph (a first call during capture fails with a
// message). Bad shapes or dtypes throw before anything is enqueued.
enum class Fp8GemmKernel : uint8_t { kAuto, kSm90SwapAB, kCublasLt, kGemv, kGemvMma, kOneGroup };

void linear_fp8_w8a8_cuda(const Tensor& x_q, const Tensor& x_scales, const Tensor& w_q, const Tensor& w_scale_inv,
                          Tensor& out, cudaStream_t stream, Fp8GemmKernel kernel = Fp8GemmKernel::kAuto);

// linear_fp8_w8a8_cuda of x.x_q, x.scales; where the kernel is cuBLASLt and x.scales_t ([ceil(K/128),
// T] f32, the same scales group-major) is defined, cuBLASLt reads x.scales_t, all T in one call,
// instead of a transposed copy in the workspace.
void linear_fp8_w8a8_cuda(const Fp8Activations& x, const Tensor& w_q, const Tensor& w_scale_inv, Tensor& out,
                          cudaStream_t stream, Fp8GemmKernel kernel = Fp8GemmKernel::kAuto,
                          GridPlacement placement = GridPlacement::kAlone);

// linear_fp8 on the GPU: x [T, K] bf16 quantised with `act` (as quantize_activations_fp8_cuda),
// then the product above. Where the kernel is the GEMV (forced with kGemv, or kAuto's choice at
// one token, or two with K <= 2048) or the tensor-core GEMV (forced with kGemvMma, or kAuto's
// choice with T·K <= 8192) it quantises inside, one launch; otherwise the quantised copy comes
// from the stream-ordered caching allocator and the quantiser runs first, writing the scales in
// cuBLASLt's layout [G, T] when the product goes to cuBLASLt (no transpose pass).
void linear_fp8_cuda(const Tensor& x, const Tensor& w_q, const Tensor& w_scale_inv, const ActQuantParams& act,
                     Tensor& out, cudaStream_t stream, Fp8GemmKernel kernel = Fp8GemmKernel::kAuto,
                     GridPlacement placement = GridPlacement::kAlone);

// silu_mul_linear_fp8 on the GPU: gate_up [T, 2·K] bf16, out [T, N] bf16 or f32. At one token
// (kAuto: linear_fp8_heuristics.h's gemv_mma_takes_swiglu; or forced with kGemvMma) one launch,
// the tensor-core GEMV quantising silu(gate)·up inside (Fp8GemvInput::kSwiGlu); otherwise the
// SwiGLU quantiser (silu_mul_quantize_fp8_cuda, its scales in both layouts) into buffers from the
// stream-ordered caching allocator, then linear_fp8_w8a8_cuda with `kernel` on its codes. The two
// forms quantise to the same codes and scales; with the same GEMV their outputs are the same bits.
void silu_mul_linear_fp8_cuda(const Tensor& gate_up, const Tensor& w_q, const Tensor& w_scale_inv,
                              const ActQuantParams& act, Tensor& out, cudaStream_t stream,
                              Fp8GemmKernel kernel = Fp8GemmKernel::kAuto,
                              GridPlacement placement = GridPlacement::kAlone);

// x_scales [T, G] f32 -> out [G, T] f32: the activation scales in cuBLASLt's VEC128 layout. An
// activation quantiser that writes [G, T] itself (Fp8ScaleLayout::kGroupMajor, ops/fp8_quant.h)
// lets a caller skip this pass.
void transpose_fp8_act_scales_cuda(const Tensor& x_scales, Tensor& out, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
