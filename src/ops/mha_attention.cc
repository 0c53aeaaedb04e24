// Device dispatch of mha_attention.h (see dispatch.h).
#include "ops/mha_attention.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void mha_attention(const Tensor& q, const Tensor& k, const Tensor& v, const MhaParams& params, AttentionState& out,
                   Stream stream, const AttentionFp8Output& out_q) {
  if (!on_gpu(out.out)) return mha_attention_cpu(q, k, v, params, out, out_q);
#ifdef MLASERVE_WITH_CUDA
  return mha_attention_cuda(q, k, v, params, out, out_q, cuda_stream(stream));
#else
  no_gpu_path("mha_attention");
#endif
}

}  // namespace mlaserve::ops
