#include <algorithm>
#include <cmath>
#include <numbers>

#include "ops/cpu_util.h"
#include "ops/rope.h"

namespace mlaserve::ops {
namespace {

void check_params(const RopeParams& p) {
  MLA_CHECK(p.rotary_dim > 0 && p.rotary_dim % 2 == 0, "rope: rotary_dim {} must be positive and even",
            p.rotary_dim);
  MLA_CHECK(p.theta > 1.0, "rope: theta {} must be > 1", p.theta);
  if (p.yarn) {
    MLA_CHECK(p.factor > 0.0 && p.original_max_position > 0 && p.beta_fast > 0.0 && p.beta_slow > 0.0,
              "rope: YaRN needs a positive factor ({}), original_max_position ({}) and betas ({}, {})",
              p.factor, p.original_max_position, p.beta_fast, p.beta_slow);
  }
}

double yarn_mscale(double factor, double coefficient) {
  return factor <= 1.0 ? 1.0 : 0.1 * coefficient * std::log(factor) + 1.0;
}

// The pair index whose wavelength makes `rotations` turns over the original context.
double correction_dim(const RopeParams& p, double rotations) {
  return static_cast<double>(p.rotary_dim) *
         std::log(static_cast<double>(p.original_max_position) / (2.0 * std::numbers::pi * rotations)) /
         (2.0 * std::log(p.theta));
}

}  // namespace

YarnCorrectionRange yarn_correction_range(const RopeParams& params) {
  check_params(params);
  YarnCorrectionRange r;
  r.low = std::max(std::floor(correction_dim(params, params.beta_fast)), 0.0);
  r.high = std::min(std::ceil(correction_dim(params, params.beta_slow)),
                    static_cast<double>(params.rotary_dim - 1));
  if (r.low == r.high) r.high += 0.001;  // avoid a division by zero in the ramp
  return r;
}

std::vector<float> rope_inv_freq(const RopeParams& params) {
  check_params(params);
  const int64_t pairs = params.rotary_dim / 2;
  std::vector<float> inv_freq(static_cast<size_t>(pairs));
  const YarnCorrectionRange range = params.yarn ? yarn_correction_range(params) : YarnCorrectionRange{};
  for (int64_t i = 0; i < pairs; ++i) {
    const double extrapolated = std::pow(params.theta, -2.0 * static_cast<double>(i) /
                                                           static_cast<double>(params.rotary_dim));
    double f = extrapolated;
    if (params.yarn) {
      const double ramp =
          std::clamp((static_cast<double>(i) - range.low) / (range.high - range.low), 0.0, 1.0);
      f = extrapolated / params.factor * ramp + extrapolated * (1.0 - ramp);
    }
    inv_freq[static_cast<size_t>(i)] = static_cast<float>(f);
  }
  return inv_freq;
}

void build_rope_cos_sin_cpu(const RopeParams& params, Tensor& cos_sin) {
  constexpr std::string_view kOp = "build_rope_cos_sin_cpu";
  cpu::check_f32(kOp, "cos_sin", cos_sin);
  MLA_CHECK(cos_sin.ndim() == 2 && cos_sin.dim(1) == params.rotary_dim,
            "{}: cos_sin {} must be [positions, rotary_dim = {}]", kOp, shape_str(cos_sin.shape()),
            params.rotary_dim);
  const std::vector<float> inv_freq = rope_inv_freq(params);
  const auto magnitude = static_cast<float>(
      params.yarn ? yarn_mscale(params.factor, params.mscale) / yarn_mscale(params.factor, params.mscale_all_dim)
                  : 1.0);
  const int64_t pairs = params.rotary_dim / 2;
  float* table = cos_sin.data<float>();
  for (int64_t p = 0; p < cos_sin.dim(0); ++p) {
    float* row = table + p * params.rotary_dim;
    for (int64_t i = 0; i < pairs; ++i) {
      const float angle = static_cast<float>(p) * inv_freq[static_cast<size_t>(i)];
      row[i] = magnitude * std::cos(angle);
      row[pairs + i] = magnitude * std::sin(angle);
    }
  }
}

void apply_rope_interleaved_cpu(Tensor& x, const Tensor& positions, const Tensor& cos_sin,
                                int64_t channel_offset) {
  constexpr std::string_view kOp = "apply_rope_interleaved_cpu";
  cpu::check_f32(kOp, "x", x);
  cpu::check_index(kOp, "positions", positions);
  cpu::check_f32(kOp, "cos_sin", cos_sin);
  MLA_CHECK(x.ndim() == 2 || x.ndim() == 3, "{}: x {} must be [T, heads, row] or [T, row]", kOp,
            shape_str(x.shape()));
  MLA_CHECK(cos_sin.ndim() == 2 && cos_sin.dim(1) % 2 == 0, "{}: cos_sin {} must be [P, dr], dr even",
            kOp, shape_str(cos_sin.shape()));
  const int64_t t = x.dim(0), heads = x.ndim() == 3 ? x.dim(1) : 1, row = x.dim(-1);
  const int64_t dr = cos_sin.dim(1), pairs = dr / 2, num_positions = cos_sin.dim(0);
  MLA_CHECK(channel_offset >= 0 && channel_offset + dr <= row,
            "{}: channels [{}, {}) do not fit rows of {} in x {}", kOp, channel_offset,
            channel_offset + dr, row, shape_str(x.shape()));
  cpu::check_shape(kOp, "positions", positions, {t});
  float* data = x.data<float>();
  const float* table = cos_sin.data<float>();
  for (int64_t i = 0; i < t; ++i) {
    const int64_t pos = cpu::index_at(positions, i);
    MLA_CHECK(pos >= 0 && pos < num_positions, "{}: positions[{}] = {} outside the table's [0, {})",
              kOp, i, pos, num_positions);
    const float* cos = table + pos * dr;
    const float* sin = cos + pairs;
    for (int64_t h = 0; h < heads; ++h) {
      float* v = data + (i * heads + h) * row + channel_offset;
      for (int64_t j = 0; j < pairs; ++j) {
        const float x0 = v[2 * j], x1 = v[2 * j + 1];
        v[2 * j] = x0 * cos[j] - x1 * sin[j];
        v[2 * j + 1] = x0 * sin[j] + x1 * cos[j];
      }
    }
  }
}

}  // namespace mlaserve::ops
