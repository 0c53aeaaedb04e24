// DType conversions: exhaustive over every e4m3 and bf16/f16 bit pattern, and rounding of
// random floats checked against a brute-force nearest-value search (ties to the even code).
#include "core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace mlaserve {
namespace {

bool is_e4m3_nan(uint8_t b) { return (b & 0x7f) == 0x7f; }

// Reference e4m3 decode written independently of the code under test: value table by formula.
double e4m3_reference_value(uint8_t b) {
  int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
  double v = e == 0 ? m * std::pow(2.0, -9) : (1.0 + m / 8.0) * std::pow(2.0, e - 7);
  return s ? -v : v;
}

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_EQ(dtype_size(DType::kF8E4M3), 1u);
  EXPECT_EQ(dtype_size(DType::kI64), 8u);
  DType d;
  ASSERT_TRUE(parse_dtype("F8_E4M3", &d));
  EXPECT_EQ(d, DType::kF8E4M3);
  ASSERT_TRUE(parse_dtype("BOOL", &d));
  EXPECT_EQ(d, DType::kBool);
  EXPECT_FALSE(parse_dtype("F8_E5M2", &d));
  EXPECT_FALSE(parse_dtype("bf16", &d));
}

TEST(E4M3, AllCodesDecodeAndRoundTrip) {
  for (int code = 0; code < 256; ++code) {
    auto b = static_cast<uint8_t>(code);
    float f = e4m3_to_float(float8_e4m3{b});
    if (is_e4m3_nan(b)) {
      EXPECT_TRUE(std::isnan(f)) << code;
      EXPECT_TRUE(is_e4m3_nan(float_to_e4m3(f).bits)) << code;
      continue;
    }
    EXPECT_EQ(static_cast<double>(f), e4m3_reference_value(b)) << code;
    uint8_t back = float_to_e4m3(f).bits;
    if (f == 0.0f) {
      EXPECT_EQ(back & 0x7f, 0) << code;  // +-0 keep their sign bit
      EXPECT_EQ(back & 0x80, b & 0x80) << code;
    } else {
      EXPECT_EQ(back, b) << code;
    }
  }
  EXPECT_EQ(e4m3_to_float(float8_e4m3{0x7e}), 448.0f);
  EXPECT_EQ(e4m3_to_float(float8_e4m3{0x01}), std::ldexp(1.0f, -9));
}

TEST(E4M3, SaturatesAndHandlesSpecials) {
  EXPECT_EQ(float_to_e4m3(1e9f).bits, 0x7e);
  EXPECT_EQ(float_to_e4m3(-1e9f).bits, 0xfe);
  EXPECT_EQ(float_to_e4m3(std::numeric_limits<float>::infinity()).bits, 0x7e);
  EXPECT_EQ(float_to_e4m3(-std::numeric_limits<float>::infinity()).bits, 0xfe);
  EXPECT_EQ(float_to_e4m3(449.0f).bits, 0x7e);
  EXPECT_EQ(float_to_e4m3(464.0f).bits, 0x7e);  // would round to 480, which does not exist
  EXPECT_TRUE(is_e4m3_nan(float_to_e4m3(std::nanf("")).bits));
  EXPECT_EQ(float_to_e4m3(std::ldexp(1.0f, -11)).bits, 0x00);  // 2^-11 < half of 2^-9: zero
  EXPECT_EQ(float_to_e4m3(std::ldexp(1.0f, -10)).bits, 0x00);  // exact tie to even (0)
  EXPECT_EQ(float_to_e4m3(3.0f * std::ldexp(1.0f, -10)).bits, 0x02);  // tie 1.5 -> 2
}

// Rounding matches a brute-force search for the nearest representable value, ties to even.
TEST(E4M3, RandomRoundingMatchesBruteForce) {
  std::vector<std::pair<double, uint8_t>> finite;
  for (int code = 0; code < 128; ++code) {
    if (!is_e4m3_nan(static_cast<uint8_t>(code))) finite.emplace_back(e4m3_reference_value(code), code);
  }
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> mag(-12.0f, 9.0f);
  for (int i = 0; i < 200000; ++i) {
    float a = std::exp2(mag(rng));
    if (i % 3 == 0) {  // exact midpoints between neighbours exercise ties
      size_t j = rng() % (finite.size() - 1);
      a = static_cast<float>((finite[j].first + finite[j + 1].first) / 2);
    }
    uint8_t best = 0x7e;
    if (a < 448.0f) {
      double best_err = 1e30;
      for (auto [v, c] : finite) {
        double err = std::fabs(v - a);
        if (err < best_err || (err == best_err && (c & 1) == 0)) {
          best_err = err;
          best = c;
        }
      }
    }
    ASSERT_EQ(float_to_e4m3(a).bits, best) << a;
    ASSERT_EQ(float_to_e4m3(-a).bits, best | 0x80) << -a;
  }
}

TEST(BF16, EveryPatternRoundTrips) {
  for (uint32_t b = 0; b < 65536; ++b) {
    float f = bf16_to_float(bfloat16{static_cast<uint16_t>(b)});
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(f))));
      continue;
    }
    ASSERT_EQ(float_to_bf16(f).bits, b);
  }
}

TEST(BF16, RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(bits_float(0x3f808000u)).bits, 0x3f80);  // tie, even stays
  EXPECT_EQ(float_to_bf16(bits_float(0x3f818000u)).bits, 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(float_to_bf16(bits_float(0x3f808001u)).bits, 0x3f81);  // above the tie
  EXPECT_EQ(float_to_bf16(bits_float(0x7f7fffffu)).bits, 0x7f80);  // overflow to infinity
  std::mt19937 rng(99);
  for (int i = 0; i < 100000; ++i) {
    uint32_t u = rng();
    float f = bits_float(u);
    if (std::isnan(f)) continue;
    float r = round_bf16(f);
    // The rounded value is one of the two bf16 neighbours and the nearer one.
    float lo = bits_float(u & 0xffff0000u);
    float hi = bits_float((u & 0xffff0000u) + 0x10000u);
    ASSERT_TRUE(r == lo || r == hi || std::isinf(r));
    if (!std::isinf(hi)) {
      ASSERT_LE(std::fabs(double(r) - f), std::fabs(double(r == lo ? hi : lo) - f));
    }
  }
}

TEST(F16, EveryPatternRoundTrips) {
  for (uint32_t b = 0; b < 65536; ++b) {
    float f = f16_to_float(float16{static_cast<uint16_t>(b)});
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_f16(f).bits, b) << b;
  }
  EXPECT_EQ(f16_to_float(float16{0x3c00}), 1.0f);
  EXPECT_EQ(f16_to_float(float16{0x0001}), std::ldexp(1.0f, -24));
  EXPECT_EQ(float_to_f16(65520.0f).bits, 0x7c00);
  EXPECT_EQ(float_to_f16(65504.0f).bits, 0x7bff);
}

}  // namespace
}  // namespace mlaserve
