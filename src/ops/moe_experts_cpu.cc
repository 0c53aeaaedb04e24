// CPU reference of moe_experts (see moe_experts.h): per expert, views of its stacked weights and
// of its rows, then gate_up GEMM -> silu_mul -> down GEMM with the plain linear ops.
#include <algorithm>

#include "ops/cpu_util.h"
#include "ops/linear.h"
#include "ops/linear_fp8.h"
#include "ops/moe_experts.h"
#include "ops/silu_mul.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "moe_experts_cpu";

// Expert e's matrix (and scale) out of a stacked [E, rows, cols] tensor.
Tensor expert_slice(const Tensor& stacked, int64_t e) {
  return stacked.slice(e, e + 1).reshape({stacked.dim(1), stacked.dim(2)});
}

void apply(const Tensor& x, const Tensor& w, const Tensor& scale, const ActQuantParams& act, Tensor& out) {
  if (w.dtype() == DType::kF8E4M3) {
    linear_fp8_cpu(x, w, scale, act, out);
  } else {
    linear_cpu(x, w, out);
  }
}

}  // namespace

void moe_experts_cpu(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& w, const ActQuantParams& act,
                     Tensor& out) {
  cpu::check_f32(kOp, "x", x);
  cpu::check_f32(kOp, "out", out);
  MLA_CHECK(w.gate_up.ndim() == 3 && w.down.ndim() == 3, "{}: gate_up {} and down {} must be stacked [E, rows, cols]",
            kOp, shape_str(w.gate_up.shape()), shape_str(w.down.shape()));
  const int64_t e_count = w.num_experts(), im = w.intermediate(), h = w.down.dim(1), rows = x.dim(0);
  cpu::check_shape(kOp, "gate_up", w.gate_up, {e_count, 2 * im, h});
  cpu::check_shape(kOp, "x", x, {rows, h});
  cpu::check_shape(kOp, "out", out, {rows, h});
  cpu::check_shape(kOp, "expert_offsets", expert_offsets, {e_count + 1});
  MLA_CHECK(expert_offsets.dtype() == DType::kI32, "{}: expert_offsets must be I32", kOp);
  const int32_t* off = expert_offsets.data<int32_t>();
  MLA_CHECK(0 <= off[0] && off[e_count] <= rows, "{}: expert_offsets run from {} to {}, outside the {} rows", kOp,
            off[0], off[e_count], rows);
  for (int64_t e = 0; e < e_count; ++e) {
    const int64_t b = off[e], n = off[e + 1] - b;
    MLA_CHECK(n >= 0, "{}: expert_offsets decrease at expert {}", kOp, e);
    if (n == 0) continue;
    const Tensor scale_gu = w.is_fp8() ? expert_slice(w.gate_up_scale, e) : Tensor();
    const Tensor scale_d = w.is_fp8() ? expert_slice(w.down_scale, e) : Tensor();
    Tensor gate_up = Tensor::empty({n, 2 * im}, DType::kF32);
    apply(x.slice(b, b + n), expert_slice(w.gate_up, e), scale_gu, act, gate_up);
    Tensor hidden = Tensor::empty({n, im}, DType::kF32);
    silu_mul_cpu(gate_up, hidden);
    Tensor rows_out = out.slice(b, b + n);
    apply(hidden, expert_slice(w.down, e), scale_d, act, rows_out);
  }
}

}  // namespace mlaserve::ops
