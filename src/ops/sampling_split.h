// How the GPU sampler (ops/cuda/sampling_filtered.cuh) shares a row of logits among the CTAs of a
// cluster, and how many CTAs a row gets: a C++17 header that nvcc also compiles, so that the CPU
// tests check the same arithmetic the kernel runs.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define MLA_SAMPLING_SPLIT_HD __host__ __device__
#else
#define MLA_SAMPLING_SPLIT_HD
#endif

namespace mlaserve::ops {

// The tokens [begin, end) of a row of v that CTA `rank` of `ctas` takes: slices of whole 4-token
// steps (each starts 16-byte aligned where the row does), in rank order, covering the row; the
// last ones may be short or empty.
struct VocabSlice {
  int32_t begin, end;
};
MLA_SAMPLING_SPLIT_HD constexpr VocabSlice vocab_slice(int32_t v, int rank, int ctas) {
  const int32_t per = 4 * ((v / 4 + ctas) / ctas);  // > v / ctas, a multiple of 4
  const int32_t begin = rank * per < v ? rank * per : v;
  return VocabSlice{begin, begin + per < v ? begin + per : v};
}

// CTAs a sampled row: one from about a row an SM (rows >= sms / 2); fewer rows split over
// clusters of 2, 4 or 8, so that the SMs share the passes' per-token work.
constexpr int ctas_per_row(int64_t rows, int sms) {
  const int64_t fit = sms / (rows > 1 ? rows : 1);
  return fit >= 8 ? 8 : fit >= 4 ? 4 : fit >= 2 ? 2 : 1;
}

}  // namespace mlaserve::ops

#undef MLA_SAMPLING_SPLIT_HD
