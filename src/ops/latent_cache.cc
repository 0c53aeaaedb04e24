// Device dispatch of latent_cache.h (see dispatch.h).
#include "ops/latent_cache.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void write_latent_cache(const Tensor& latent, const Tensor& k_pe, const Tensor& slot_mapping, Tensor& cache, Stream stream) {
  if (!on_gpu(cache)) return write_latent_cache_cpu(latent, k_pe, slot_mapping, cache);
#ifdef MLASERVE_WITH_CUDA
  write_latent_cache_cuda(latent, k_pe, slot_mapping, cache, cuda_stream(stream));
#else
  no_gpu_path("write_latent_cache");
#endif
}

void gather_latent_cache(const Tensor& cache, const Tensor& block_table, Tensor& latent, Tensor& k_pe, Stream stream) {
  if (!on_gpu(latent)) return gather_latent_cache_cpu(cache, block_table, latent, k_pe);
#ifdef MLASERVE_WITH_CUDA
  gather_latent_cache_cuda(cache, block_table, latent, k_pe, cuda_stream(stream));
#else
  no_gpu_path("gather_latent_cache");
#endif
}

}  // namespace mlaserve::ops
