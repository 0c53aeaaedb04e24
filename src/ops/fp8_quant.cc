// Device dispatch of fp8_quant.h (see dispatch.h).
#include "ops/fp8_quant.h"

#include "ops/dispatch.h"
#include "ops/silu_mul.h"

namespace mlaserve::ops {

void quantize_activations_fp8(const Tensor& x, const ActQuantParams& params, Tensor& x_q, Tensor& scales,
                              Stream stream) {
  if (!on_gpu(x_q)) return quantize_activations_fp8_cpu(x, params, x_q, scales);
#ifdef MLASERVE_WITH_CUDA
  quantize_activations_fp8_cuda(x, params, x_q, scales, cuda_stream(stream));
#else
  no_gpu_path("quantize_activations_fp8");
#endif
}

void silu_mul_quantize_fp8(const Tensor& gate_up, const ActQuantParams& params, Fp8Activations& out,
                           Stream stream) {
  if (!on_gpu(out.x_q)) {
    MLA_CHECK(gate_up.ndim() == 2 && gate_up.dim(1) % 2 == 0, "silu_mul_quantize_fp8: gate_up {} must be [T, 2·I]",
              shape_str(gate_up.shape()));
    Tensor hidden = Tensor::empty({gate_up.dim(0), gate_up.dim(1) / 2}, DType::kF32);  // [T, I]
    silu_mul_cpu(gate_up, hidden);
    return quantize_activations_fp8_cpu(hidden, params, out);
  }
#ifdef MLASERVE_WITH_CUDA
  silu_mul_quantize_fp8_cuda(gate_up, params, out, cuda_stream(stream));
#else
  no_gpu_path("silu_mul_quantize_fp8");
#endif
}

}  // namespace mlaserve::ops
