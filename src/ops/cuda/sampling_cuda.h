// GPU next-token selection: the CUDA side of ops/sampling.h, which includes this file in CUDA
// builds. It is a header of its own because the CUDA translation units compile as C++17
// (CMAKE_CUDA_STANDARD) and ops/sampling.h needs C++20's <span>.
//
//   logits     [B, V] f32 on the GPU (NaN-free)
//   token_ids  [B] i32 on the GPU
//   out        [B, V] f32 on the GPU
//
// greedy_sample_cuda: token_ids[b] = argmax_v logits[b, v], ties to the lowest id; the same
// token as greedy_sample_cpu, exactly.
// log_softmax_cuda: out = logits - (m + log Σ exp(logits - m)), m the row max, the sum and log
// in double, the normaliser rounded once to fp32: log_softmax_cpu's arithmetic (the sum in
// another order, ~1e-16 relative), so the two agree to about one fp32 ulp of the normaliser.
// Both asynchronous on stream; one CTA per row.
#pragma once

#include <cuda_runtime_api.h>

#include "core/tensor.h"

namespace mlaserve::ops {

void greedy_sample_cuda(const Tensor& logits, Tensor& token_ids, cudaStream_t stream);

void log_softmax_cuda(const Tensor& logits, Tensor& out, cudaStream_t stream);

}  // namespace mlaserve::ops
