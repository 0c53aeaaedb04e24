#include <algorithm>
#include <cmath>

#include "ops/cpu_util.h"
#include "ops/fp8_quant.h"

namespace mlaserve::ops {
namespace {

// The smallest power of two >= s (s > 0, finite).
float round_up_pow2(float s) {
  int exponent = 0;
  const float mantissa = std::frexp(s, &exponent);  // s = mantissa · 2^exponent, mantissa in [0.5, 1)
  return mantissa == 0.5f ? s : std::ldexp(1.0f, exponent);
}

}  // namespace

void quantize_activations_fp8_cpu(const Tensor& x, const ActQuantParams& params, Tensor& x_q,
                                  Tensor& scales) {
  constexpr std::string_view kOp = "quantize_activations_fp8_cpu";
  cpu::check_f32(kOp, "x", x);
  cpu::check_host(kOp, "x_q", x_q);
  MLA_CHECK(x.ndim() == 2, "{}: x {} must be [T, K]", kOp, shape_str(x.shape()));
  MLA_CHECK(x_q.dtype() == DType::kF8E4M3, "{}: x_q must be F8_E4M3, got {}", kOp, dtype_name(x_q.dtype()));
  cpu::check_shape(kOp, "x_q", x_q, x.shape());
  cpu::check_f32(kOp, "scales", scales);
  const int64_t t = x.dim(0), k = x.dim(1), groups = fp8_num_blocks(k);
  cpu::check_shape(kOp, "scales", scales, {t, groups});
  MLA_CHECK(params.amax_floor > 0.0f, "{}: amax_floor must be positive, got {}", kOp, params.amax_floor);
  const float* src = x.data<float>();
  float8_e4m3* q = x_q.data<float8_e4m3>();
  float* s = scales.data<float>();
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t c0 = g * kFp8BlockSize, c1 = std::min(k, c0 + kFp8BlockSize);
      float amax = params.amax_floor;
      for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::abs(src[i * k + c]));
      float scale = amax / kE4M3Max;
      if (params.scale_format == Fp8ScaleFormat::kUE8M0) scale = round_up_pow2(scale);
      for (int64_t c = c0; c < c1; ++c) q[i * k + c] = float_to_e4m3(src[i * k + c] / scale);
      s[i * groups + g] = scale;
    }
  }
}

void quantize_activations_fp8_cpu(const Tensor& x, const ActQuantParams& params, Fp8Activations& out) {
  constexpr std::string_view kOp = "quantize_activations_fp8_cpu";
  quantize_activations_fp8_cpu(x, params, out.x_q, out.scales);
  if (!out.scales_t.defined()) return;
  const int64_t t = x.dim(0), groups = out.scales.dim(1);
  cpu::check_f32(kOp, "scales_t", out.scales_t);
  cpu::check_shape(kOp, "scales_t", out.scales_t, {groups, t});
  const float* s = out.scales.data<float>();
  float* s_t = out.scales_t.data<float>();
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t g = 0; g < groups; ++g) s_t[g * t + i] = s[i * groups + g];  // [T, G] -> [G, T]
  }
}

}  // namespace mlaserve::ops
