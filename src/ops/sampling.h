// Next-token selection on the host: greedy argmax, seeded sampling with temperature / top-k /
// top-p / min-p, and log-softmax for logprobs. In CUDA builds all three also run on the GPU
// (ops/cuda/sampling_cuda.h, included at the end, which states how closely each one matches).
//
//   logits     [B, V] f32 (one row per sequence that samples this step)
//   token_ids  [B] i32, caller-allocated
//   out        [B, V] f32 for log_softmax (log-probabilities, natural log)
//
// greedy_sample_cpu: token = argmax_v logits[b, v]; ties go to the lowest id.
//
// sample_cpu, per row b with options[b] and keys[b]:
//  1. temperature <= 0: greedy, as above (no randomness used).
//  2. z = logits / temperature; tokens ranked by z (ties: lower id first); p ∝ exp(z - max z).
//  3. top_k > 0: keep the top_k best ranked.
//  4. top_p < 1: of those, keep the shortest best-ranked prefix whose mass reaches top_p of the
//     kept mass (at least one token).
//  5. min_p > 0: of those, drop tokens with p < min_p · p_max.
//  6. one uniform u in [0, 1) from keys[b]; walk the kept tokens in rank order and return the
//     first whose cumulative mass exceeds u · (kept mass).
// A sampled row whose best z is not finite (every token masked to -inf, or NaN) gets token -1,
// as on the GPU. Rows run side by side on the host's cores when they are large enough.
// The filters run in Hugging Face's order (temperature, top-k, top-p, min-p); each later filter
// sees the earlier ones' renormalised distribution. Probabilities and sums are in double.
//
// Randomness is counter-based: u = sampling_uniform(key) is a fixed function of (seed, counter)
// (SplitMix64 finalisers), with no hidden generator state. The engine passes a request's seed and
// the number of tokens it has generated so far, so the same seed gives the same tokens whatever
// the batch around it; the GPU sampler reproduces u bit for bit (ops/sampling_key.h).
#pragma once

#include <cstdint>
#include <span>

#include "core/stream.h"
#include "core/tensor.h"
#include "ops/sampling_key.h"  // SamplingOptions, SamplingKey, sampling_uniform

namespace mlaserve::ops {

void greedy_sample_cpu(const Tensor& logits, Tensor& token_ids);

void sample_cpu(const Tensor& logits, std::span<const SamplingOptions> options,
                std::span<const SamplingKey> keys, Tensor& token_ids);

void log_softmax_cpu(const Tensor& logits, Tensor& out);

// Dispatch by device (ops/dispatch.h).
void greedy_sample(const Tensor& logits, Tensor& token_ids, Stream stream = {});
void sample(const Tensor& logits, std::span<const SamplingOptions> options, std::span<const SamplingKey> keys,
            Tensor& token_ids, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
// sample_cuda, greedy_sample_cuda and log_softmax_cuda (GPU tensors, asynchronous on a stream).
#include "ops/cuda/sampling_cuda.h"
#endif  // MLASERVE_WITH_CUDA
