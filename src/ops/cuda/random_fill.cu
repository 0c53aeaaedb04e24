// fill_uniform on the GPU: a grid-stride loop computing the same counter-based values as the
// host (random_fill.h), rounded to bf16 with round-to-nearest-even like float_to_bf16.
#include <cuda_bf16.h>

#include <algorithm>

#include "core/cuda_check.h"
#include "ops/random_fill.h"

namespace mlaserve::ops {
namespace {

__device__ float device_uniform(uint64_t seed, float half_width, float center, uint64_t i) {
  uint64_t z = seed ^ (i * 0x9e3779b97f4a7c15ull);
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  const float u = static_cast<float>(z >> 40) * 0x1p-24f;
  return center + half_width * (2.0f * u - 1.0f);
}

template <typename T>
__global__ void fill_uniform_kernel(T* out, uint64_t n, uint64_t seed, float half_width, float center) {
  for (uint64_t i = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x; i < n; i += uint64_t{gridDim.x} * blockDim.x) {
    const float v = device_uniform(seed, half_width, center, i);
    if constexpr (sizeof(T) == 4) {
      out[i] = v;
    } else {
      out[i] = __float2bfloat16_rn(v);
    }
  }
}

}  // namespace

void fill_uniform_cuda(const UniformFill& fill, Tensor& out, cudaStream_t s) {
  const auto n = static_cast<uint64_t>(out.numel());
  if (n == 0) return;
  constexpr int kThreads = 256;
  const unsigned blocks = static_cast<unsigned>(std::min<uint64_t>((n + kThreads - 1) / kThreads, 132 * 32));
  if (out.dtype() == DType::kF32) {
    fill_uniform_kernel<<<blocks, kThreads, 0, s>>>(static_cast<float*>(out.raw()), n, fill.seed, fill.half_width,
                                                     fill.center);
  } else {
    MLA_CHECK(out.dtype() == DType::kBF16, "fill_uniform: out must be F32 or BF16, got {}", dtype_name(out.dtype()));
    fill_uniform_kernel<<<blocks, kThreads, 0, s>>>(static_cast<__nv_bfloat16*>(out.raw()), n, fill.seed,
                                                     fill.half_width, fill.center);
  }
  MLA_CUDA_CHECK_LAUNCH();
}

}  // namespace mlaserve::ops
