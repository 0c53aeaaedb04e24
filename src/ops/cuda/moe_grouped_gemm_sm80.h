// Host-side entry point of the grouped MoE GEMM's decode tiles (moe_grouped_gemm_sm80.cuh) with
// the L2 prefetch distance chosen by the caller, internal to src/ops/cuda (and the benchmarks
// that compare distances). The model goes through moe_experts_cuda (ops/moe_experts.h), which
// takes kDecodeL2PrefetchKTiles (moe_grouped_gemm_sm80_heuristics.h).
#pragma once

#include <cuda_runtime_api.h>

#include "core/tensor.h"
#include "ops/moe_experts.h"

namespace mlaserve::ops {

// moe_experts_cuda (same operands, checks and result) through the 16 x 64 decode tiles whatever
// the rows per expert, each B row prefetched into L2 l2_prefetch_k_tiles 64-wide k-tiles ahead
// of the cp.async ring (0: no prefetch).
void moe_experts_sm80_decode(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& weights,
                             Tensor& hidden, Tensor& out, int l2_prefetch_k_tiles, cudaStream_t stream);

}  // namespace mlaserve::ops
