// Device dispatch of fp8_block.h (see dispatch.h).
#include "ops/fp8_block.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void quantize_weight_block_fp8(const Tensor& w, Tensor& w_q, Tensor& scale_inv, Stream stream) {
  if (!on_gpu(w_q)) return quantize_weight_block_fp8_cpu(w, w_q, scale_inv);
#ifdef MLASERVE_WITH_CUDA
  quantize_weight_block_fp8_cuda(w, w_q, scale_inv, cuda_stream(stream));
#else
  no_gpu_path("quantize_weight_block_fp8");
#endif
}

}  // namespace mlaserve::ops
