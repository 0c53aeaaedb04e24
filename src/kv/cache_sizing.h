// How many cache blocks fit in device memory: a pure function, so that it is tested on the CPU;
// the GPU side passes what cudaMemGetInfo reports once weights and workspace are allocated.
//
//   budget     = utilization · total − (total − free)      bytes the cache may take
//   num_blocks = floor(budget / block_bytes)
// `total − free` is everything already taken on the card: this engine's weights and workspace,
// and anything else running there. With utilization 0.9 the engine as a whole stays within 90%
// of the card, as vLLM's --gpu-memory-utilization means.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace mlaserve {

struct CacheSizingInput {
  size_t total_bytes = 0;     // the device's memory
  size_t free_bytes = 0;      // free after the weights and workspace are allocated
  double utilization = 0.9;   // (0, 1]: the share of total_bytes the engine may use
  size_t block_bytes = 0;     // one 64-token block across every layer (latent_block_bytes)
};

// Bytes of one 64-token block of the latent cache over all layers.
size_t latent_block_bytes(int64_t num_layers, int64_t row_dim, DType dtype);

// The number of blocks; fails with the figures when not even one block fits.
int64_t num_cache_blocks(const CacheSizingInput& in);

// The same for the current GPU, from what cudaMemGetInfo reports now (call it once the weights
// are loaded) less `workspace_bytes` kept for activations. Fails in a build without CUDA.
int64_t num_cache_blocks_on_gpu(double utilization, size_t workspace_bytes, size_t block_bytes);

}  // namespace mlaserve
