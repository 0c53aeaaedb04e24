// Helpers for the CPU op tests: random inputs, poisoned outputs, error metrics against
// references computed in double precision.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ops/rope.h"

namespace mlaserve::ops::testing {

// DeepSeek-V2/V3's released RoPE: YaRN with factor 40 over 4096 original positions, beta 32 / 1,
// mscale 1 in both places (config.json's rope_scaling), on `rotary_dim` channels.
inline RopeParams deepseek_yarn(int64_t rotary_dim = 64) {
  RopeParams p;
  p.rotary_dim = rotary_dim;
  p.yarn = true;
  p.factor = 40.0;
  p.original_max_position = 4096;
  p.beta_fast = 32.0;
  p.beta_slow = 1.0;
  p.mscale = 1.0;
  p.mscale_all_dim = 1.0;
  return p;
}

// Normal(0, scale) values rounded to `dtype` (f32, bf16 or e4m3).
inline Tensor random_tensor(const Shape& shape, DType dtype, std::mt19937_64& rng, float scale = 1.0f) {
  if (shape_numel(shape) == 0) return Tensor::empty(shape, dtype);  // from_floats memcpy's from null
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& x : v) x = dist(rng);
  return Tensor::from_floats(v, shape, dtype);
}

// The tensor's values (any float dtype or i32/i64) as doubles.
inline std::vector<double> to_doubles(const Tensor& t) {
  std::vector<float> f = t.to_vector();
  return std::vector<double>(f.begin(), f.end());
}

// A new host tensor with every byte 0xFF: NaN for f32, -1 for integers.
inline Tensor poisoned(const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  t.fill_bytes(0xFF);
  return t;
}

// Every element of an f32 output was written (no poison NaN left).
inline void expect_all_written(const Tensor& t) {
  const float* p = t.data<float>();
  int64_t nans = 0;
  for (int64_t i = 0; i < t.numel(); ++i) nans += std::isnan(p[i]) ? 1 : 0;
  EXPECT_EQ(nans, 0) << "elements left unwritten (NaN) in " << shape_str(t.shape());
}

// max |got - want| / max |want|: the worst error relative to the reference's scale.
inline double max_rel_error(const Tensor& got, const std::vector<double>& want) {
  std::vector<double> g = to_doubles(got);
  EXPECT_EQ(g.size(), want.size());
  double err = 0.0, scale = 0.0;
  for (size_t i = 0; i < g.size() && i < want.size(); ++i) {
    err = std::max(err, std::abs(g[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return scale > 0.0 ? err / scale : err;
}

// ||got - want||_2 / ||want||_2.
inline double rel_l2_error(const std::vector<double>& got, const std::vector<double>& want) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return den > 0.0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Records a measured error in the test's XML/JSON output (--gtest_output), e.g. to see how close
// a threshold is.
inline void record_error(const std::string& name, double value) {
  ::testing::Test::RecordProperty(name, fmt::format("{:.3e}", value));
}

inline Tensor i32_tensor(const std::vector<int32_t>& values, const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::kI32);
  std::copy(values.begin(), values.end(), t.data<int32_t>());
  return t;
}

}  // namespace mlaserve::ops::testing
