// The CPU references of rms_norm_fp8.h: the norm (rms_norm_cpu.cc), then the quantiser
// (fp8_quant_cpu.cc) on its f32 output.
#include "ops/rms_norm.h"
#include "ops/rms_norm_fp8.h"

namespace mlaserve::ops {

void rms_norm_fp8_cpu(const Tensor& x, const Tensor& weight, float eps, Tensor& out, const ActQuantParams& act,
                      Fp8Activations& out_q) {
  rms_norm_cpu(x, weight, eps, out);
  quantize_activations_fp8_cpu(out, act, out_q);
}

void add_rms_norm_fp8_cpu(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out,
                          const ActQuantParams& act, Fp8Activations& out_q) {
  add_rms_norm_cpu(x, residual, weight, eps, out);
  quantize_activations_fp8_cpu(out, act, out_q);
}

void add_sum_rms_norm_fp8_cpu(const Tensor& base, const Tensor& rest, Tensor& residual, const Tensor& weight,
                              float eps, Tensor& out, const ActQuantParams& act, Fp8Activations& out_q) {
  add_sum_rms_norm_cpu(base, rest, residual, weight, eps, out);
  quantize_activations_fp8_cpu(out, act, out_q);
}

}  // namespace mlaserve::ops
