#include "kv/cache_sizing.h"

#include <cmath>

#include "core/error.h"
#include "kv/latent_cache.h"
#ifdef MLASERVE_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace mlaserve {

size_t latent_block_bytes(int64_t num_layers, int64_t row_dim, DType dtype) {
  MLA_CHECK(num_layers > 0 && row_dim > 0, "latent_block_bytes: {} layers of {}-wide rows", num_layers, row_dim);
  return static_cast<size_t>(num_layers * row_dim * kCacheBlockSize) * dtype_size(dtype);
}

int64_t num_cache_blocks(const CacheSizingInput& in) {
  MLA_CHECK(in.utilization > 0.0 && in.utilization <= 1.0, "memory utilization must be in (0, 1], got {}",
            in.utilization);
  MLA_CHECK(in.free_bytes <= in.total_bytes, "free memory ({} bytes) exceeds the total ({} bytes)", in.free_bytes,
            in.total_bytes);
  MLA_CHECK(in.block_bytes > 0, "a cache block must take some bytes");
  const double used = static_cast<double>(in.total_bytes - in.free_bytes);
  const double budget = in.utilization * static_cast<double>(in.total_bytes) - used;
  const double blocks = std::floor(budget / static_cast<double>(in.block_bytes));
  MLA_CHECK(blocks >= 1.0,
            "no room for the KV cache: {:.2f} GiB of {:.2f} GiB are in use and utilization {} allows {:.2f} GiB; "
            "one block takes {:.2f} MiB (raise --gpu-memory-utilization or use a smaller model)",
            used / (1 << 30), static_cast<double>(in.total_bytes) / (1 << 30), in.utilization,
            in.utilization * static_cast<double>(in.total_bytes) / (1 << 30),
            static_cast<double>(in.block_bytes) / (1 << 20));
  return static_cast<int64_t>(blocks);
}

int64_t num_cache_blocks_on_gpu(double utilization, size_t workspace_bytes, size_t block_bytes) {
#ifdef MLASERVE_WITH_CUDA
  size_t free = 0, total = 0;
  MLA_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  MLA_CHECK(free > workspace_bytes, "the GPU has {:.2f} GiB free, less than the {:.2f} GiB workspace",
            static_cast<double>(free) / (1 << 30), static_cast<double>(workspace_bytes) / (1 << 30));
  return num_cache_blocks({total, free - workspace_bytes, utilization, block_bytes});
#else
  MLA_FAIL("sizing the KV cache from GPU memory needs the CUDA backend");
#endif
}

}  // namespace mlaserve
