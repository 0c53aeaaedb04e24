#include <algorithm>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/linear_fp8.h"
#include "ops/silu_mul.h"

namespace mlaserve::ops {

void linear_fp8_w8a8_cpu(const Tensor& x_q, const Tensor& x_scales, const Tensor& w_q,
                         const Tensor& w_scale_inv, Tensor& out) {
  constexpr std::string_view kOp = "linear_fp8_w8a8_cpu";
  for (const Tensor* t : {&x_q, &w_q}) {
    cpu::check_host(kOp, "x_q/w_q", *t);
    MLA_CHECK(t->dtype() == DType::kF8E4M3 && t->ndim() == 2, "{}: x_q and w_q must be F8_E4M3 2-D, got {} {}",
              kOp, dtype_name(t->dtype()), shape_str(t->shape()));
  }
  cpu::check_f32(kOp, "x_scales", x_scales);
  cpu::check_f32(kOp, "w_scale_inv", w_scale_inv);
  cpu::check_f32(kOp, "out", out);
  const int64_t t = x_q.dim(0), k = x_q.dim(1), n = w_q.dim(0), groups = fp8_num_blocks(k);
  MLA_CHECK(w_q.dim(1) == k, "{}: x_q {} and w_q {} disagree on K", kOp, shape_str(x_q.shape()),
            shape_str(w_q.shape()));
  cpu::check_shape(kOp, "x_scales", x_scales, {t, groups});
  cpu::check_shape(kOp, "w_scale_inv", w_scale_inv, {fp8_num_blocks(n), groups});
  cpu::check_shape(kOp, "out", out, {t, n});

  // e4m3 -> f32 is exact, so the products below are the e4m3 products.
  const Tensor xf = x_q.to_f32();  // [T, K]
  const float* x = xf.data<float>();
  const float* sx = x_scales.data<float>();
  const float* sw = w_scale_inv.data<float>();
  const float8_e4m3* wq = w_q.data<float8_e4m3>();
  float* o = out.data<float>();
  cpu::parallel_for(n, t * k, [&](int64_t r0, int64_t r1) {
    std::vector<float> w(static_cast<size_t>(k));  // one weight row as f32
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = 0; c < k; ++c) w[c] = e4m3_to_float(wq[r * k + c]);
      const float* w_scales = sw + (r / kFp8BlockSize) * groups;
      for (int64_t i = 0; i < t; ++i) {
        float total = 0.0f;
        for (int64_t g = 0; g < groups; ++g) {
          const int64_t c0 = g * kFp8BlockSize, width = std::min(kFp8BlockSize, k - c0);
          const float partial = cpu::dot(x + i * k + c0, w.data() + c0, width);
          total += partial * (sx[i * groups + g] * w_scales[g]);
        }
        o[i * n + r] = total;
      }
    }
  });
}

void linear_fp8_cpu(const Tensor& x, const Tensor& w_q, const Tensor& w_scale_inv,
                    const ActQuantParams& act, Tensor& out) {
  MLA_CHECK(x.ndim() == 2, "linear_fp8_cpu: x {} must be [T, K]", shape_str(x.shape()));
  Tensor x_q = Tensor::empty(x.shape(), DType::kF8E4M3);                         // [T, K]
  Tensor x_scales = Tensor::empty({x.dim(0), fp8_num_blocks(x.dim(1))}, DType::kF32);  // [T, K/128]
  quantize_activations_fp8_cpu(x, act, x_q, x_scales);
  linear_fp8_w8a8_cpu(x_q, x_scales, w_q, w_scale_inv, out);
}

void silu_mul_linear_fp8_cpu(const Tensor& gate_up, const Tensor& w_q, const Tensor& w_scale_inv,
                             const ActQuantParams& act, Tensor& out) {
  MLA_CHECK(gate_up.ndim() == 2 && gate_up.dim(1) % 2 == 0, "silu_mul_linear_fp8_cpu: gate_up {} must be [T, 2·K]",
            shape_str(gate_up.shape()));
  Tensor hidden = Tensor::empty({gate_up.dim(0), gate_up.dim(1) / 2}, DType::kF32);  // [T, K]
  silu_mul_cpu(gate_up, hidden);
  linear_fp8_cpu(hidden, w_q, w_scale_inv, act, out);
}

}  // namespace mlaserve::ops
