// The CPU references of rms_norm_fp8.h: the norm (rms_norm_cpu.cc), then the quantiser
// (fp8_quant_cpu.cc) on its f32 output.
#include "ops/cpu_util.h"
#include "ops/rms_norm.h"
#include "ops/rms_norm_fp8.h"

namespace mlaserve::ops {

void quantize_norm_output_cpu(const Tensor& out, const ActQuantParams& act, Fp8Activations& out_q) {
  constexpr std::string_view kOp = "quantize_norm_output_cpu";
  quantize_activations_fp8_cpu(out, act, out_q.x_q, out_q.scales);
  if (!out_q.scales_t.defined()) return;
  const int64_t t = out.dim(0), groups = out_q.scales.dim(1);
  cpu::check_f32(kOp, "scales_t", out_q.scales_t);
  cpu::check_shape(kOp, "scales_t", out_q.scales_t, {groups, t});
  const float* s = out_q.scales.data<float>();
  float* s_t = out_q.scales_t.data<float>();
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t g = 0; g < groups; ++g) s_t[g * t + i] = s[i * groups + g];  // [T, G] -> [G, T]
  }
}

void rms_norm_fp8_cpu(const Tensor& x, const Tensor& weight, float eps, Tensor& out, const ActQuantParams& act,
                      Fp8Activations& out_q) {
  rms_norm_cpu(x, weight, eps, out);
  quantize_norm_output_cpu(out, act, out_q);
}

void add_rms_norm_fp8_cpu(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out,
                          const ActQuantParams& act, Fp8Activations& out_q) {
  add_rms_norm_cpu(x, residual, weight, eps, out);
  quantize_norm_output_cpu(out, act, out_q);
}

void add_sum_rms_norm_fp8_cpu(const Tensor& base, const Tensor& rest, Tensor& residual, const Tensor& weight,
                              float eps, Tensor& out, const ActQuantParams& act, Fp8Activations& out_q) {
  add_sum_rms_norm_cpu(base, rest, residual, weight, eps, out);
  quantize_norm_output_cpu(out, act, out_q);
}

}  // namespace mlaserve::ops
