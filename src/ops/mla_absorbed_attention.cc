// Device dispatch of mla_absorbed_attention.h (see dispatch.h).
#include "ops/mla_absorbed_attention.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

bool mla_absorbed_attention_fits(const MlaAbsorbedArgs& args, const Tensor& o) {
  if (!on_gpu(o)) return false;
#ifdef MLASERVE_WITH_CUDA
  return mla_absorbed_attention_cuda_fits(args, o);
#else
  return false;
#endif
}

int64_t mla_absorbed_attention_max_seqs(int64_t n_heads, Device device) {
  if (device != Device::kCUDA) return 0;
#ifdef MLASERVE_WITH_CUDA
  return mla_absorbed_attention_cuda_max_seqs(n_heads);
#else
  (void)n_heads;
  return 0;
#endif
}

void mla_absorbed_attention(const MlaAbsorbedArgs& args, Tensor& o, Stream stream) {
  if (!on_gpu(o)) return mla_absorbed_attention_cpu(args, o);
#ifdef MLASERVE_WITH_CUDA
  mla_absorbed_attention_cuda(args, o, cuda_stream(stream));
#else
  no_gpu_path("mla_absorbed_attention");
#endif
}

}  // namespace mlaserve::ops
