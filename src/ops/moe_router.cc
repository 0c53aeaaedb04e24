// Device dispatch of moe_router.h (see dispatch.h).
#include "ops/moe_router.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void moe_route(const Tensor& logits, const Tensor& correction_bias, const RouterParams& params, RouterOutputs& outputs, Stream stream) {
  if (!on_gpu(outputs.weights)) return moe_route_cpu(logits, correction_bias, params, outputs);
#ifdef MLASERVE_WITH_CUDA
  moe_route_cuda(logits, correction_bias, params, outputs, cuda_stream(stream));
#else
  no_gpu_path("moe_route");
#endif
}

}  // namespace mlaserve::ops
