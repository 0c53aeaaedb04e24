#include <cmath>

#include "ops/cpu_util.h"
#include "ops/silu_mul.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "silu_mul_cpu";

// rows x width; gate row r at gate + r * stride, likewise up.
void silu_mul_rows(const float* gate, const float* up, int64_t stride, int64_t rows, int64_t width,
                   float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < width; ++i) {
      const float z = gate[r * stride + i];
      out[r * width + i] = z / (1.0f + std::exp(-z)) * up[r * stride + i];
    }
  }
}

}  // namespace

void silu_mul_cpu(const Tensor& gate_up, Tensor& out) {
  cpu::check_f32(kOp, "gate_up", gate_up);
  cpu::check_f32(kOp, "out", out);
  MLA_CHECK(gate_up.ndim() == 2 && gate_up.dim(1) % 2 == 0, "{}: gate_up {} must be [T, 2·I]", kOp,
            shape_str(gate_up.shape()));
  const int64_t t = gate_up.dim(0), width = gate_up.dim(1) / 2;
  cpu::check_shape(kOp, "out", out, {t, width});
  const float* p = gate_up.data<float>();
  silu_mul_rows(p, p + width, 2 * width, t, width, out.data<float>());
}

void silu_mul_cpu(const Tensor& gate, const Tensor& up, Tensor& out) {
  cpu::check_f32(kOp, "gate", gate);
  cpu::check_f32(kOp, "up", up);
  cpu::check_f32(kOp, "out", out);
  MLA_CHECK(gate.ndim() == 2, "{}: gate {} must be [T, I]", kOp, shape_str(gate.shape()));
  cpu::check_shape(kOp, "up", up, gate.shape());
  cpu::check_shape(kOp, "out", out, gate.shape());
  silu_mul_rows(gate.data<float>(), up.data<float>(), gate.dim(1), gate.dim(0), gate.dim(1),
                out.data<float>());
}

}  // namespace mlaserve::ops
