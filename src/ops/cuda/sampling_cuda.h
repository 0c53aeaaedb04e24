// GPU next-token selection: the CUDA side of ops/sampling.h, which includes this file in CUDA
// builds. It is a header of its own because the CUDA translation units compile as C++17
// (CMAKE_CUDA_STANDARD) and ops/sampling.h needs C++20's <span>.
//
//   logits     [B, V] f32 on the GPU (NaN-free)
//   token_ids  [B] i32 on the GPU
//   out        [B, V] f32 on the GPU
//
// sample_cuda: sample_cpu on the GPU. options and keys are host arrays of B entries (checked as
// sample_cpu checks them; copied to the GPU on the stream). u = sampling_uniform(key) is computed
// on the GPU by the same integer code (ops/sampling_key.h), bit for bit. Greedy rows (temperature
// <= 0) get greedy_sample_cuda's token exactly. Other rows get sample_cpu's token except when a
// decision lies within rounding of a boundary: sums are in double in another order, and CUDA's
// exp may differ from the host's by an ulp, so u · (kept mass), top_p · (top-k mass) or min_p
// within ~1e-12 (relative) of a cumulative mass or a probability can go either way; such rows
// are rare (the tests count them and check each one is at a boundary). A row whose best z is not
// finite (every token masked), where sample_cpu throws, gets token -1. Design and cost:
// sampling_filtered.cuh.
// greedy_sample_cuda: token_ids[b] = argmax_v logits[b, v], ties to the lowest id; the same
// token as greedy_sample_cpu, exactly.
// log_softmax_cuda: out = logits - (m + log Σ exp(logits - m)), m the row max, the sum and log
// in double, the normaliser rounded once to fp32: log_softmax_cpu's arithmetic (the sum in
// another order, ~1e-16 relative), so the two agree to about one fp32 ulp of the normaliser.
// Both asynchronous on stream; one CTA per row.
#pragma once

#include <cuda_runtime_api.h>

#include "core/tensor.h"
#include "ops/sampling_key.h"

namespace mlaserve::ops {

void sample_cuda(const Tensor& logits, const SamplingOptions* options, const SamplingKey* keys, Tensor& token_ids,
                 cudaStream_t stream);

void greedy_sample_cuda(const Tensor& logits, Tensor& token_ids, cudaStream_t stream);

void log_softmax_cuda(const Tensor& logits, Tensor& out, cudaStream_t stream);

}  // namespace mlaserve::ops
