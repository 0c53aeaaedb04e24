// The paged latent KV cache (MODEL_SPEC.md §4.1): per layer one tensor
//   [num_blocks, 64, 576] = [block, row in block, (c_n (512) | rotated k_pe (64))]
// Nothing per head is cached. The same storage holds the rows of KvCacheLayout::kMha (model.h),
// per-head K and V of n · 320 values (ops/paged_mha_cache.h): row_dim is the layout's. Block ids are shared by all layers: block b of a sequence holds
// rows b*64 .. b*64+63 of that sequence in every layer. A token's slot is block_id * 64 + row.
// Which blocks belong to which sequence is the block pool's business (kv/block_pool.h); this
// is only the storage.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace mlaserve {

inline constexpr int64_t kCacheBlockSize = 64;

class LatentCache {
 public:
  LatentCache() = default;
  LatentCache(int64_t num_layers, int64_t num_blocks, int64_t row_dim, DType dtype, Device device);

  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t row_dim() const { return row_dim_; }
  int64_t capacity_tokens() const { return num_blocks_ * kCacheBlockSize; }
  Tensor& layer(int64_t i) { return layers_.at(static_cast<size_t>(i)); }
  const Tensor& layer(int64_t i) const { return layers_.at(static_cast<size_t>(i)); }
  // Bytes of one token across all layers.
  size_t bytes_per_token() const;

 private:
  int64_t num_blocks_ = 0;
  int64_t row_dim_ = 0;
  std::vector<Tensor> layers_;  // [num_blocks, 64, row_dim] each
};

}  // namespace mlaserve
