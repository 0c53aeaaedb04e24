#include "kv/latent_cache.h"

namespace mlaserve {

LatentCache::LatentCache(int64_t num_layers, int64_t num_blocks, int64_t row_dim, DType dtype, Device device)
    : num_blocks_(num_blocks), row_dim_(row_dim) {
  MLA_CHECK(num_layers > 0 && num_blocks > 0 && row_dim > 0,
            "latent cache needs positive layers, blocks and row width (got {}, {}, {})", num_layers, num_blocks,
            row_dim);
  layers_.reserve(static_cast<size_t>(num_layers));
  for (int64_t i = 0; i < num_layers; ++i) {
    layers_.push_back(Tensor::zeros({num_blocks, kCacheBlockSize, row_dim}, dtype, device));
  }
}

size_t LatentCache::bytes_per_token() const {
  if (layers_.empty()) return 0;
  return layers_.size() * static_cast<size_t>(row_dim_) * dtype_size(layers_.front().dtype());
}

}  // namespace mlaserve
