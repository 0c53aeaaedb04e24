// The row norms of rms_norm.h that also write the FP8 quantisation of their output (issue #6):
// the input of the FP8 linears that read a normed activation (q_proj or q_a_proj and
// kv_a_proj_with_mqa after the input norm, the MLP's or shared experts' gate_up and the routed
// experts' rows after the post-attention norm, q_b_proj after q_a_layernorm), quantised once by
// the pass that makes it instead of by a quantiser pass before each linear.
//
//   x, residual, weight, eps, out   as rms_norm / add_rms_norm / add_sum_rms_norm (rms_norm.h),
//                                   x [T, K] (two dimensions)
//   act                             the quantisation's parameters (ActQuantParams, fp8_quant.h)
//   out_q                           Fp8Activations [T, K] e4m3 + scales [T, ceil(K/128)] f32 and,
//                                   when out_q.scales_t is defined, the same scales group-major
//                                   [ceil(K/128), T]; caller-allocated
//
//   out   = the norm, exactly as its rms_norm.h form writes it
//   out_q = quantize_activations_fp8(out, act)   (per token and 128-channel group, fp8_quant.h)
//
// The CPU reference is the two CPU ops in a row (f32 out). On the GPU the quantised value is
// the bf16-rounded `out`, so codes and scales are the bits of the rms_norm.h CUDA op followed by
// quantize_activations_fp8_cuda, in either scale layout (rms_norm.cu: one pass; the row's
// groups are quantised from the registers that hold the normed values).
#pragma once

#include <cstdint>

#include "core/memory.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "ops/fp8_quant.h"

namespace mlaserve::ops {

void rms_norm_fp8_cpu(const Tensor& x, const Tensor& weight, float eps, Tensor& out, const ActQuantParams& act,
                      Fp8Activations& out_q);
void add_rms_norm_fp8_cpu(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out,
                          const ActQuantParams& act, Fp8Activations& out_q);
void add_sum_rms_norm_fp8_cpu(const Tensor& base, const Tensor& rest, Tensor& residual, const Tensor& weight,
                              float eps, Tensor& out, const ActQuantParams& act, Fp8Activations& out_q);

// Where the FP8 forms pay: whether a step of `tokens` rows on `device` should have its norms
// quantise for their FP8 readers (the model's rule: DeepSeekModel::fp8_input, model.cc). On the
// GPU past the GEMVs' token range, tokens > kGemvMmaMaxTokens = 8
// (src/ops/cuda/linear_fp8_heuristics.h): there each FP8 linear on bf16 x runs a quantiser pass
// of its own and then the kernel it runs on quantised x (kAuto's choice depends on x being
// quantised only at <= 8 tokens), so the norm's quantisation saves those passes and changes no
// bit. At <= 8 tokens the GEMVs quantise inside their CTAs where T·K is small (gemv_quantizes,
// gemv_mma_quantizes), and on quantised x kAuto takes another kernel (the tensor-core GEMV at one
// token, where bf16 x takes the CUDA-core GEMV): the fused norms and that change cost more than
// they saved. Measured on an H200
// (gpu-bin-lead/s17/run05.sh; V2-Lite dummy FP8 decode step, context 1024, CUDA graph, ms, two
// rounds, norms not quantising / quantising at every size): batch 1 1.979, 2.019 / 2.123, 2.114;
// 16 6.100, 6.083 / 5.957, 5.951 (-2.3%); 32 7.208, 7.206 / 7.193, 7.174; 64 8.103, 8.101 /
// 8.076, 8.052. On the CPU (the reference, whose linear_fp8 always quantises apart): always.
// Wide rows (k >= kWideRowMinK, linear_fp8_heuristics.h: V3's and V2's hidden 7168 and 5120)
// quantise at every step: there each GEMV reading bf16 x quantises the wide row in every CTA or
// runs a quantiser pass first, which the norm's codes save; at one token bf16 x on wide rows takes
// the tensor-core GEMV too (use_gemv_mma), so the codes change no bit. Measured on an H200
// (2026-12-01, thirty-seventh session, bench/NOTES-engine.md; decode_step_bench FP8, graph ms, two
// rounds, the rule past 8 tokens / wide rows at every step, the tensor-core GEMV on their codes at
// one token): V3 10 layers batch 1 2.541, 2.567 / 2.518, 2.518; 2 3.302, 3.307 / 3.292, 3.287; 4
// 4.496, 4.504 / 4.453, 4.457; a V3 TP8 channel rank batch 1 4.867, 4.855 / 4.754, 4.733; 2 6.649,
// 6.592 / 6.358, 6.418. Measured again as landed (thirty-eighth session, gpu-bin-lead/s38b, main /
// this rule): V3 10 layers batch 1 2.537, 2.568 / 2.509, 2.514; a TP4 rank of 20 layers (o_proj's
// bf16 x, K 4096, on the tensor-core GEMV) 2.262, 2.264 / 2.251, 2.247; a TP8 channel rank 4.835,
// 4.867 / 4.769, 4.761; batches 2 and 4 within 1% either way. V2-Lite (H 2048) loses with its
// norms quantising at 1-8 tokens (batch 1 1.711, 1.656 / 1.801, 1.760). V2 (5120) was not measured.
bool fp8_norm_quantization_pays(Device device, int64_t tokens, int64_t k);

// Dispatch by device (ops/dispatch.h): the model graph calls these. An empty out_q (x_q
// undefined: no FP8 reader) runs the plain rms_norm.h op.
void rms_norm_fp8(const Tensor& x, const Tensor& weight, float eps, Tensor& out, const ActQuantParams& act,
                  Fp8Activations& out_q, Stream stream = {});
void add_rms_norm_fp8(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out,
                      const ActQuantParams& act, Fp8Activations& out_q, Stream stream = {});
void add_sum_rms_norm_fp8(const Tensor& base, const Tensor& rest, Tensor& residual, const Tensor& weight, float eps,
                          Tensor& out, const ActQuantParams& act, Fp8Activations& out_q, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/rms_norm.cu ----------------------------------------------------------
// The tensors of the rms_norm.h CUDA forms (bf16 out) plus out_q on the GPU; asynchronous on
// stream. One launch where the norm takes its 16-byte path (K a multiple of 8, every operand
// 16-byte aligned, x_q 8-byte aligned); otherwise the norm and then quantize_activations_fp8_cuda
// (once a scale layout). out may be x (rms_norm_fp8_cuda: in place).
void rms_norm_fp8_cuda(const Tensor& x, const Tensor& weight, float eps, Tensor& out, const ActQuantParams& act,
                       Fp8Activations& out_q, cudaStream_t stream);
void add_rms_norm_fp8_cuda(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out,
                           const ActQuantParams& act, Fp8Activations& out_q, cudaStream_t stream);
void add_sum_rms_norm_fp8_cuda(const Tensor& base, const Tensor& rest, Tensor& residual, const Tensor& weight,
                               float eps, Tensor& out, const ActQuantParams& act, Fp8Activations& out_q,
                               cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
