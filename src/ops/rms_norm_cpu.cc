#include <cmath>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/rms_norm.h"

namespace mlaserve::ops {
namespace {

// Checks the shapes and returns the number of rows.
int64_t check_norm(std::string_view op, const Tensor& x, const Tensor& weight, float eps,
                   const Tensor& out) {
  cpu::check_f32(op, "x", x);
  cpu::check_f32_or_bf16(op, "weight", weight);
  cpu::check_f32(op, "out", out);
  MLA_CHECK(weight.ndim() == 1 && x.ndim() >= 1 && x.dim(-1) == weight.dim(0),
            "{}: x {} must end in the weight's width, weight {}", op, shape_str(x.shape()),
            shape_str(weight.shape()));
  cpu::check_shape(op, "out", out, x.shape());
  MLA_CHECK(eps > 0.0f, "{}: eps must be positive, got {}", op, eps);
  return weight.dim(0) == 0 ? 0 : x.numel() / weight.dim(0);
}

void normalize_rows(const float* x, const float* w, int64_t rows, int64_t d, float eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    const float mean_square = cpu::dot(xr, xr, d) / static_cast<float>(d);
    const float inv_rms = 1.0f / std::sqrt(mean_square + eps);
    float* o = out + r * d;
    for (int64_t j = 0; j < d; ++j) o[j] = w[j] * (xr[j] * inv_rms);
  }
}

// residual += x (+ rest, when given), then out = rms_norm(residual).
void add_norm(std::string_view op, const Tensor& x, const Tensor* rest, Tensor& residual, const Tensor& weight,
              float eps, Tensor& out) {
  const int64_t rows = check_norm(op, x, weight, eps, out);
  cpu::check_f32(op, "residual", residual);
  cpu::check_shape(op, "residual", residual, x.shape());
  float* res = residual.data<float>();
  const float* xp = x.data<float>();
  if (rest != nullptr) {
    cpu::check_f32(op, "rest", *rest);
    cpu::check_shape(op, "rest", *rest, x.shape());
    const float* rp = rest->data<float>();
    for (int64_t i = 0; i < x.numel(); ++i) res[i] += xp[i] + rp[i];
  } else {
    for (int64_t i = 0; i < x.numel(); ++i) res[i] += xp[i];
  }
  std::vector<float> scratch;
  const float* w = cpu::f32_span(weight, 0, weight.dim(0), scratch);
  normalize_rows(res, w, rows, weight.dim(0), eps, out.data<float>());
}

}  // namespace

void rms_norm_cpu(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  const int64_t rows = check_norm("rms_norm_cpu", x, weight, eps, out);
  std::vector<float> scratch;
  const float* w = cpu::f32_span(weight, 0, weight.dim(0), scratch);
  normalize_rows(x.data<float>(), w, rows, weight.dim(0), eps, out.data<float>());
}

void add_rms_norm_cpu(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out) {
  add_norm("add_rms_norm_cpu", x, nullptr, residual, weight, eps, out);
}

void add_sum_rms_norm_cpu(const Tensor& base, const Tensor& rest, Tensor& residual, const Tensor& weight, float eps,
                          Tensor& out) {
  add_norm("add_sum_rms_norm_cpu", base, &rest, residual, weight, eps, out);
}

}  // namespace mlaserve::ops
