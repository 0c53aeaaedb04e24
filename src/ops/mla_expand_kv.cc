// Device dispatch of mla_expand_kv.h (see dispatch.h).
#include "ops/mla_expand_kv.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void mla_expand_kv(const Tensor& kv, const Tensor& k_pe, Tensor& k, Tensor& v, Stream stream) {
  if (!on_gpu(k)) return mla_expand_kv_cpu(kv, k_pe, k, v);
  no_gpu_path("mla_expand_kv");
}

}  // namespace mlaserve::ops
