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
// CPU (the reference, whose linear_fp8 always quantises apart): always. On the GPU from two
// tokens, and at every step for wide rows (k >= kWideRowMinK, src/ops/cuda/linear_fp8_heuristics.h:
// V3's and V2's hidden 7168 and 5120). There each FP8 linear on bf16 x takes the kernel it takes
// on quantised x (use_gemv_mma; past 8 tokens kAuto's choice does not depend on x) and quantises
// inside every CTA (gemv_mma_quantizes) or runs a quantiser pass first, which the norm's codes
// save without changing a bit. One token on narrow rows stays bf16: there bf16 x takes the
// CUDA-core GEMV quantising inside, quantised x the tensor-core GEMV, and the fused norm and that
// change cost more than they save. Measured on an H200 (decode_step_bench FP8, context 1024, CUDA
// graph, ms; bench/NOTES-engine.md):
//   - V2-Lite (H 2048), 3 rounds, narrow rows past 8 tokens only / at every step (2026-12-03,
//     forty-eighth session): batch 1 1.636, 1.615, 1.646 / 1.673, 1.667, 1.631; 2 1.995, 1.982,
//     2.016 / 1.989, 1.969, 1.984; 3 2.568 x 3 / 2.508, 2.501, 2.492; 4 2.727, 2.728, 2.730 /
//     2.639, 2.661, 2.649 (-3%); 6 3.508, 3.526, 3.517 / 3.503, 3.463, 3.500; 8 3.836, 3.861, 3.828
//     / 3.852, 3.808, 3.849. Past 8 tokens (2026-11-20, gpu-bin-lead/s17/run05.sh): 16 6.100, 6.083
//     / 5.957, 5.951 (-2.3%); 32 and 64 -0.3%.
//   - V3 10 layers (q_a_layernorm's 1536 the narrow rows), same session: batch 1 2.484, 2.464,
//     2.496 / 2.455, 2.473, 2.469; 2 3.219, 3.235, 3.226 / 3.239, 3.237, 3.237; 4 4.377, 4.384,
//     4.391 / 4.382, 4.363, 4.359; 8 6.531, 6.511, 6.535 / 6.491, 6.467, 6.494.
//   - Wide rows at every step against past 8 tokens (2026-12-01, thirty-seventh and thirty-eighth
//     sessions): V3 10 layers batch 1 2.537, 2.568 / 2.509, 2.514; a V3 TP8 channel rank 4.835,
//     4.867 / 4.769, 4.761; a TP4 rank of 20 layers 2.262, 2.264 / 2.251, 2.247; batches 2 and 4
//     within 1% either way. V2 (5120) was not measured.
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
