// Device dispatch of mla_expand_kv.h (see dispatch.h).
#include "ops/mla_expand_kv.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void mla_expand_kv(const Tensor& kv, const Tensor& k_pe, Tensor& k, Tensor& v, Stream stream) {
  if (!on_gpu(k)) return mla_expand_kv_cpu(kv, k_pe, k, v);
#ifdef MLASERVE_WITH_CUDA
  mla_expand_kv_cuda(kv, k_pe, k, v, cuda_stream(stream));
#else
  no_gpu_path("mla_expand_kv");
#endif
}

}  // namespace mlaserve::ops
