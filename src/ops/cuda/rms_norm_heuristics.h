// The CTA shape of the row norms: rms_norm_cuda and its residual-add forms (rms_norm.cu), and
// moe_combine_add_rms_norm_cuda (moe_combine_norm.cu). Host-only, no CUDA types.
//
// One CTA per row; thread i owns the vectors i, i + threads, i + 2·threads, .. of the row (8
// elements each, or 1 on the one-element path), one thread per vector up to kRmsNormMaxThreads
// (V2-Lite's H = 2048: 256 threads, one vector each; V3's 7168: 256 threads, 3 or 4 each). A row's
// sum of squares is each thread's fp32 sum over its vectors in order, then gpu::block_sum: the
// thread count and this map fix the order of the additions, so moe_combine_add_rms_norm_cuda
// takes the same shape to give add_rms_norm_cuda's bits.
#pragma once

#include <algorithm>
#include <cstdint>

namespace mlaserve::ops::gpu {

inline constexpr int kRmsNormMaxThreads = 256;

// Threads of the CTA for a row of `vectors` vectors: a multiple of 32, 32 .. kRmsNormMaxThreads.
inline int rms_norm_threads(int64_t vectors) {
  return static_cast<int>(std::clamp<int64_t>((vectors + 31) / 32 * 32, 32, kRmsNormMaxThreads));
}

}  // namespace mlaserve::ops::gpu
