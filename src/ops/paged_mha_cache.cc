// Device dispatch of paged_mha_cache.h (see dispatch.h).
#include "ops/paged_mha_cache.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void write_mha_cache(const Tensor& k, const Tensor& v, const Tensor& slot_mapping, Tensor& cache, Stream stream) {
  if (!on_gpu(cache)) return write_mha_cache_cpu(k, v, slot_mapping, cache);
#ifdef MLASERVE_WITH_CUDA
  write_mha_cache_cuda(k, v, slot_mapping, cache, cuda_stream(stream));
#else
  no_gpu_path("write_mha_cache");
#endif
}

void gather_mha_cache(const Tensor& cache, const Tensor& block_table, Tensor& k, Tensor& v, Stream stream) {
  if (!on_gpu(k)) return gather_mha_cache_cpu(cache, block_table, k, v);
#ifdef MLASERVE_WITH_CUDA
  gather_mha_cache_cuda(cache, block_table, k, v, cuda_stream(stream));
#else
  no_gpu_path("gather_mha_cache");
#endif
}

}  // namespace mlaserve::ops
