// The end of a single-GPU MoE layer as one op: the routed experts' weighted combine
// (moe_combine, moe_dispatch.h), the residual add and the next RMSNorm (add_rms_norm,
// rms_norm.h), which the model otherwise runs back to back with nothing between them.
//
//   combine          expert_out [T·k, H] (sorted order), sorted_pairs [T·k] i32, weights [T, k]
//                    f32 (moe_combine's inputs), and shared_out [T, H], the shared experts'
//                    output the combine accumulates onto, or an undefined Tensor (a model without
//                    shared experts: the combine starts from zero)
//   residual         [T, H] the residual stream h, updated in place
//   weight           [H] f32 or bf16, the next norm's weight; eps its epsilon
//   out              [T, H] normed
//
//   y         = shared_out + Σ_j weights[t, j] · expert_out[position of pair t·k + j]   (j order)
//   residual += y
//   out       = rms_norm(residual) · weight
//
// exactly moe_combine(expert_out, sorted_pairs, weights, y = shared_out or zeros) then
// add_rms_norm(y, residual, weight, eps, out): the CPU reference is those two CPU ops (f32
// throughout); the CUDA op gives the two CUDA ops' bits (below). shared_out is only read.
//
// Why one op: at decode sizes moe_combine and add_rms_norm are each a ~2-3 us launch in the
// serial chain of a step, one CTA or a few per token, and the second only re-reads what the first
// wrote. Under tensor parallelism the FFN's partial output is all-reduced between the two, so
// there the model keeps them apart.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"
#include "ops/fp8_quant.h"

namespace mlaserve::ops {

// moe_combine's inputs, with the output it accumulates onto.
struct MoeCombineInputs {
  Tensor expert_out;    // [T·k, H] the routed experts' outputs, in expert (sorted) order
  Tensor sorted_pairs;  // [T·k] i32 the pair at each sorted position (MoeGrouping)
  Tensor weights;       // [T, k] f32 the router's weights
  Tensor shared_out;    // [T, H] the combine's starting value, or undefined: zero
  // Only expert_out and shared_out may still be in the writing: sorted_pairs and weights come
  // from a kernel at least two launches back (a decode step's router, before the experts' two
  // GEMVs), the residual and the norm weight from before that. shared_out comes from a joined
  // stream, but inside a CUDA graph the kernel can start before the joined branch's last kernel
  // ends (the batch-1 trace of bench/NOTES-engine.md, twenty-third session: ~1 us before it). The
  // GPU's decode-size kernel then reads the row's positions and prefetches the rest before it
  // waits (programmatic launch); a prefetch reads no value, and shared_out is loaded after the wait.
  bool early_inputs = false;
};

// Host tensors, f32 (expert_out, shared_out, residual, out).
void moe_combine_add_rms_norm_cpu(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                                  Tensor& out);

// Dispatch by device (ops/dispatch.h): the model graph calls this.
void moe_combine_add_rms_norm(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                              Tensor& out, Stream stream = {});

// The same, also writing the FP8 quantisation of out (the next layer's input, which its FP8
// q_proj or q_a_proj and kv_a_proj_with_mqa read): out_q = quantize_activations_fp8(out, act), as
// the FP8 forms of rms_norm.h do (ops/rms_norm_fp8.h, which states the contract). The CPU
// reference is moe_combine_add_rms_norm_cpu then quantize_activations_fp8_cpu. The dispatch runs the
// plain op above when out_q is empty (x_q undefined).
void moe_combine_add_rms_norm_fp8_cpu(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                                      Tensor& out, const ActQuantParams& act, Fp8Activations& out_q);
void moe_combine_add_rms_norm_fp8(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                                  Tensor& out, const ActQuantParams& act, Fp8Activations& out_q, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/moe_combine_norm.{cuh,cu} --------------------------------------------
// expert_out, shared_out, residual and out bf16, weights f32, weight f32 or bf16; asynchronous on
// stream. Per element y = bf16(shared_out + Σ_j w_j x_j) (fp32, j order, rounded once, as
// moe_combine_cuda stores y), residual = bf16(residual + y) and out = bf16(w · (v · inv_rms)),
// with the sum of squares of each row reduced in add_rms_norm_cuda's order (same thread count,
// vector width and element-to-thread map): bit for bit moe_combine_cuda then add_rms_norm_cuda
// whenever H % 8 == 0 and every tensor is 16-byte aligned (the model's case: both kernels take
// 16-byte vectors). Otherwise the one-element path; add_rms_norm_cuda takes its own vectorised
// path when only y, residual, weight and out are aligned, so there the sums of squares may
// differ in order (fp32 rounding, ~1e-7 relative). residual must not alias any other tensor.
// k <= 32. Above 2048 pairs a [T·k] i32 workspace from the caching allocator holds the inverse of
// sorted_pairs, as in moe_combine_cuda (moe_dispatch_kernels.h: the kernels and their rule).
void moe_combine_add_rms_norm_cuda(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                                   Tensor& out, cudaStream_t stream);
// With out_q (moe_combine_add_rms_norm_fp8): one launch on the 16-byte path (x_q 8-byte aligned
// too), whose second pass quantises the row's bf16 output (rms_norm.cuh); otherwise the op above,
// then quantize_activations_fp8_cuda.
void moe_combine_add_rms_norm_fp8_cuda(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                                       Tensor& out, const ActQuantParams& act, Fp8Activations& out_q,
                                       cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
