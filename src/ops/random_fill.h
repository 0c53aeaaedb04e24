// Seeded uniform fill, for dummy weights at real shapes (model/dummy.h). Counter-based, so the
// host and the GPU produce the same values and a 16B-parameter model fills at memory speed:
//
//   u(seed, i)  = top 24 bits of SplitMix64(seed ^ (i * golden ratio)) / 2^24     in [0, 1)
//   out[i]      = center + half_width * (2 u - 1)                                  then rounded
//                                                                                  to out's dtype
//   out         f32 or bf16, any shape (flat index i)
#pragma once

#include <cstdint>

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

struct UniformFill {
  uint64_t seed = 0;
  float half_width = 1.0f;
  float center = 0.0f;
};

inline float uniform_fill_value(const UniformFill& f, uint64_t i) {
  uint64_t z = f.seed ^ (i * 0x9e3779b97f4a7c15ull);
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  const float u = static_cast<float>(z >> 40) * 0x1p-24f;
  return f.center + f.half_width * (2.0f * u - 1.0f);
}

void fill_uniform_cpu(const UniformFill& fill, Tensor& out);

// Dispatch by device (ops/dispatch.h).
void fill_uniform(const UniformFill& fill, Tensor& out, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {
void fill_uniform_cuda(const UniformFill& fill, Tensor& out, cudaStream_t stream);
}  // namespace mlaserve::ops
#endif
