// Device dispatch of mla_absorb.h (see dispatch.h).
#include "ops/mla_absorb.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void mla_absorb_query(const Tensor& q, const Tensor& w_kv_b, Tensor& q_abs, Stream stream) {
  if (!on_gpu(q_abs)) return mla_absorb_query_cpu(q, w_kv_b, q_abs);
#ifdef MLASERVE_WITH_CUDA
  mla_absorb_query_cuda(q, w_kv_b, q_abs, cuda_stream(stream));
#else
  no_gpu_path("mla_absorb_query");
#endif
}

void mla_up_project_output(const Tensor& o_lat, const Tensor& w_kv_b, Tensor& o, Stream stream) {
  if (!on_gpu(o)) return mla_up_project_output_cpu(o_lat, w_kv_b, o);
#ifdef MLASERVE_WITH_CUDA
  mla_up_project_output_cuda(o_lat, w_kv_b, o, cuda_stream(stream));
#else
  no_gpu_path("mla_up_project_output");
#endif
}

}  // namespace mlaserve::ops
