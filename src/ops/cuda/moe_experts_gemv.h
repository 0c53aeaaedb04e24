// Host-side entry point of the routed experts' grouped GEMV (moe_experts_gemv.cuh), internal to
// src/ops/cuda: moe_experts_cuda and moe_experts_fp8_cuda (ops/moe_experts.h) call it when
// runs_moe_gemv says so.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/tensor.h"
#include "ops/cuda/moe_experts_gemv_heuristics.h"
#include "ops/moe_experts.h"

namespace mlaserve::ops {

// Whether a call over `rows` gathered rows with weights `w` takes the GEMV: forced, or kAuto and
// use_moe_gemv.
inline bool runs_moe_gemv(MoeExpertsPath path, int64_t rows, const ExpertWeights& w) {
  return path == MoeExpertsPath::kGemv ||
         (path == MoeExpertsPath::kAuto && gpu::use_moe_gemv(rows, w.is_fp8(), w.intermediate()));
}

// moe_experts_cuda / moe_experts_fp8_cuda (same operands, contract and checks; BF16 or e4m3
// weights, `act` used for e4m3 only) as two GEMV launches: gate_up + SwiGLU into hidden, then
// down into out. Any P (an expert with more than 8 rows takes several passes over its weights),
// E any, H and Im multiples of 128, min(P, E) <= 65535. `config`: the launch shape (the
// dispatch's default; tests and moe_fp8_bench force each of kMoeGemvConfigs). `placement`: what
// runs beside it, whose kernels the down launch may leave SMs (moe_gemv_down_sms_left).
void moe_experts_gemv_cuda(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& weights,
                           const ActQuantParams& act, Tensor& hidden, Tensor& out, cudaStream_t stream,
                           const gpu::MoeGemvConfig& config = gpu::kMoeGemvDefault,
                           GridPlacement placement = GridPlacement::kAlone);

// The same two launches with gate_up reading the token rows themselves (the note in
// moe_experts_gemv.cuh; the model's choice: use_moe_gemv_token_rows): x_tokens [T, H] bf16 and
// sorted_tokens [P] i32 (the token of each row in expert order, MoeGrouping) in place of the
// gathered [P, H]; hidden and out [P, ...] as above, with the same bits as moe_experts_gemv_cuda on
// the gathered rows. Any T: where moe_gemv_all_tokens and one pass holds them, every pass stages
// all T token rows, otherwise each pass's rows from their tokens. e4m3 weights with x_q defined
// (the token rows' codes [T, H] and scales [T, H/128], as quantize_activations_fp8 with `act`
// writes them): each pass's rows copied from those, not quantised; undefined: quantised in the
// kernel.
void moe_experts_gemv_token_rows_cuda(const Tensor& x_tokens, const Fp8Activations& x_q, const Tensor& sorted_tokens,
                                      const Tensor& expert_offsets, const ExpertWeights& weights,
                                      const ActQuantParams& act, Tensor& hidden, Tensor& out, cudaStream_t stream,
                                      const gpu::MoeGemvConfig& config = gpu::kMoeGemvDefault,
                                      GridPlacement placement = GridPlacement::kAlone);

}  // namespace mlaserve::ops
