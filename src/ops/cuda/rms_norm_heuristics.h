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

// The wide shape, for the few rows of a decode step whose width passes kRmsNormMaxThreads vectors
// (V3's and V2's hidden rows: 896 and 640 16-byte vectors): one thread a vector, so that the row
// makes one trip to memory instead of one per vector a thread (3-4 at V3's 7168), each on the
// step's serial path. The row's sum of squares keeps the narrow shape's order (thread i of
// rms_norm_threads(vectors) summing vectors i, i + threads, .. element by element, then
// block_sum): each thread leaves its vector in shared memory and the narrow shape's threads add
// them up in that order (wide_row_sum_sq, rms_norm.cuh), so a row has the same bits either way.
// Where it pays: one CTA a row while the rows do not fill the GPU. Measured on H200s (2026-11-30,
// bench/NOTES-engine.md, thirty-fourth session), the V3 FP8 decode step of 10 layers narrow / wide,
// three rounds: batch 1 2.592-2.594 / 2.567-2.584 ms, 8 6.798-6.805 / 6.778-6.788, 64 19.65-19.76 /
// 19.59-19.68; V2-Lite (2048: narrow either way) unchanged. Then with the MoE combine's wide kernel
// holding its rows as bf16 (it had spilled 300 bytes at 1024 threads' 64 registers; ncu: 15.9 us
// alone for one row): batch 1 2.552-2.571 -> 2.509-2.535, 8 6.768-6.774 -> 6.732-6.739, 64
// 19.52-19.71 -> 19.46-19.55.
inline constexpr int kRmsNormWideMaxThreads = 1024;
inline constexpr int64_t kRmsNormWideMaxRows = 64;
inline bool rms_norm_wide(int64_t rows, int64_t vectors) {
  return vectors > kRmsNormMaxThreads && vectors <= kRmsNormWideMaxThreads && rows <= kRmsNormWideMaxRows;
}
inline int rms_norm_wide_threads(int64_t vectors) { return static_cast<int>((vectors + 31) / 32 * 32); }

}  // namespace mlaserve::ops::gpu
