// Host-side entry point of the grouped MoE GEMM's decode tiles (moe_grouped_gemm_sm80.cuh) with
// the cp.async ring chosen by the caller, internal to src/ops/cuda (and the tests and benchmarks
// that compare rings). The model goes through moe_experts_cuda (ops/moe_experts.h), which runs
// these tiles with MoeDecodeRing::kAuto when the rows per expert are few
// (moe_grouped_gemm_sm80_heuristics.h).
#pragma once

#include <cuda_runtime_api.h>

#include "core/tensor.h"
#include "ops/cuda/moe_grouped_gemm_sm80_heuristics.h"
#include "ops/moe_experts.h"

namespace mlaserve::ops {

// moe_experts_cuda (same operands, checks and result) through the 16 x 64 decode tiles whatever
// the rows per expert, both GEMMs with `ring` (kAuto: each GEMM's own choose_decode_ring).
void moe_experts_sm80_decode(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& weights,
                             Tensor& hidden, Tensor& out, sm80::MoeDecodeRing ring, cudaStream_t stream);

}  // namespace mlaserve::ops
