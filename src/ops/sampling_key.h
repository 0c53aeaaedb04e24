// The per-row inputs of seeded sampling (ops/sampling.h) and the counter-based uniform draw,
// shared by the host reference and the GPU sampler: a C++17 header that nvcc also compiles, so
// that both sides run the same integer code and get the same u bit for bit.
//
// u = sampling_uniform(key): SplitMix64's finaliser of (seed ^ mix(counter)), top 53 bits, times
// 2^-53: a multiple of 2^-53 in [0, 1), a fixed function of (seed, counter) with no hidden state.
#pragma once

#include <cstdint>
#include <string_view>

#ifdef __CUDACC__
#define MLA_SAMPLING_HD __host__ __device__
#else
#define MLA_SAMPLING_HD
#endif

namespace mlaserve::ops {

struct SamplingOptions {
  float temperature = 1.0f;  // <= 0: greedy
  int64_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // (0, 1]; 1: off
  float min_p = 0.0f;        // [0, 1]; 0: off
};

struct SamplingKey {
  uint64_t seed = 0;
  uint64_t counter = 0;  // which draw of this seed: the request's generated-token count
};

// Fails (mlaserve::Error naming op and the row) unless every one of options[0, rows) is valid:
// finite temperature, top_k >= 0, top_p in (0, 1], min_p in [0, 1].
void check_sampling_options(std::string_view op, const SamplingOptions* options, int64_t rows);

// SplitMix64's finaliser: a bijective 64-bit mix.
MLA_SAMPLING_HD inline uint64_t sampling_mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The uniform in [0, 1) (a multiple of 2^-53) that sample_cpu and the GPU sampler use for `key`.
MLA_SAMPLING_HD inline double sampling_uniform(const SamplingKey& key) {
  return static_cast<double>(sampling_mix64(key.seed ^ sampling_mix64(key.counter)) >> 11) * 0x1.0p-53;
}

}  // namespace mlaserve::ops

#undef MLA_SAMPLING_HD
