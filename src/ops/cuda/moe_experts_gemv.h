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
  return path == MoeExpertsPath::kGemv || (path == MoeExpertsPath::kAuto && gpu::use_moe_gemv(rows, w.is_fp8()));
}

// moe_experts_cuda / moe_experts_fp8_cuda (same operands, contract and checks; BF16 or e4m3
// weights, `act` used for e4m3 only) as two GEMV launches: gate_up + SwiGLU into hidden, then
// down into out. Any P (an expert with more than 8 rows takes several passes over its weights),
// E any, H and Im multiples of 128, min(P, E) <= 65535. `config`: the launch shape (the
// dispatch's default; tests and moe_fp8_bench force each of kMoeGemvConfigs).
void moe_experts_gemv_cuda(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& weights,
                           const ActQuantParams& act, Tensor& hidden, Tensor& out, cudaStream_t stream,
                           const gpu::MoeGemvConfig& config = gpu::kMoeGemvDefault);

// The same two launches with gate_up reading the token rows themselves (the note in
// moe_experts_gemv.cuh): x_tokens [T, H] bf16 and sorted_tokens [P] i32 (the token of each row in
// expert order, MoeGrouping) in place of the gathered [P, H]; hidden and out [P, ...] as above, with
// the same bits as moe_experts_gemv_cuda on the gathered rows. Any T: up to
// kMoeGemvAllTokensMax{Bf16,Fp8} tokens that one pass holds, every pass stages all T token rows,
// past that each pass's rows from their tokens.
void moe_experts_gemv_token_rows_cuda(const Tensor& x_tokens, const Tensor& sorted_tokens,
                                      const Tensor& expert_offsets, const ExpertWeights& weights,
                                      const ActQuantParams& act, Tensor& hidden, Tensor& out, cudaStream_t stream,
                                      const gpu::MoeGemvConfig& config = gpu::kMoeGemvDefault);

// Whether the model's experts over T tokens and P = T·k rows read the token rows (the call above)
// instead of rows gathered by the routing: the GEMV runs (use_moe_gemv) and T is within
// kMoeGemvTokenRowsMax{Bf16,Fp8}.
bool moe_gemv_takes_token_rows(int64_t tokens, int64_t rows, bool fp8_weights);

}  // namespace mlaserve::ops
