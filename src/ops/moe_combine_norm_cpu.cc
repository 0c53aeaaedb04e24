// moe_combine_add_rms_norm on the host: moe_combine_cpu then add_rms_norm_cpu, all f32; its FP8 form
// then quantises the output (quantize_activations_fp8_cpu, fp8_quant.h).
#include "ops/cpu_util.h"
#include "ops/moe_combine_norm.h"
#include "ops/moe_dispatch.h"
#include "ops/rms_norm.h"
#include "ops/rms_norm_fp8.h"

namespace mlaserve::ops {

void moe_combine_add_rms_norm_cpu(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                                  Tensor& out) {
  constexpr std::string_view kOp = "moe_combine_add_rms_norm_cpu";
  cpu::check_f32(kOp, "residual", residual);
  MLA_CHECK(residual.ndim() == 2, "{}: residual {} must be [T, H]", kOp, shape_str(residual.shape()));
  Tensor y;  // [T, H] the FFN's output: the shared experts' output plus the routed combine
  if (in.shared_out.defined()) {
    cpu::check_f32(kOp, "shared_out", in.shared_out);
    cpu::check_shape(kOp, "shared_out", in.shared_out, residual.shape());
    y = in.shared_out.clone();
  } else {
    y = Tensor::zeros(residual.shape(), DType::kF32);
  }
  moe_combine_cpu(in.expert_out, in.sorted_pairs, in.weights, y);
  add_rms_norm_cpu(y, residual, weight, eps, out);
}

void moe_combine_add_rms_norm_fp8_cpu(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                                      Tensor& out, const ActQuantParams& act, Fp8Activations& out_q) {
  moe_combine_add_rms_norm_cpu(in, residual, weight, eps, out);
  quantize_activations_fp8_cpu(out, act, out_q);
}

}  // namespace mlaserve::ops
