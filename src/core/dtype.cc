#include "core/dtype.h"

#include <cmath>

#include "core/error.h"

namespace mlaserve {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kF16: return 2;
    case DType::kBF16: return 2;
    case DType::kF8E4M3: return 1;
    case DType::kI64: return 8;
    case DType::kI32: return 4;
    case DType::kU8: return 1;
    case DType::kBool: return 1;
  }
  MLA_FAIL("unknown dtype {}", static_cast<int>(dtype));
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kF8E4M3: return "F8_E4M3";
    case DType::kI64: return "I64";
    case DType::kI32: return "I32";
    case DType::kU8: return "U8";
    case DType::kBool: return "BOOL";
  }
  return "?";
}

bool parse_dtype(std::string_view name, DType* out) {
  static constexpr DType kAll[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF8E4M3,
                                   DType::kI64, DType::kI32, DType::kU8,   DType::kBool};
  for (DType d : kAll) {
    if (dtype_name(d) == name) {
      *out = d;
      return true;
    }
  }
  return false;
}

float f16_to_float(float16 h) {
  uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  uint32_t exp = (h.bits >> 10) & 0x1fu;
  uint32_t mant = h.bits & 0x3ffu;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  if (exp == 0) {                                                         // zero / subnormal
    float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

float16 float_to_f16(float f) {
  uint32_t u = float_bits(f);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return float16{static_cast<uint16_t>(sign | 0x7e00u)};  // NaN
  if (abs >= 0x477ff000u) return float16{static_cast<uint16_t>(sign | 0x7c00u)};  // >= 65520: inf
  float a = bits_float(abs);
  if (a < 6.103515625e-05f) {  // below the smallest normal (2^-14): multiples of 2^-24
    auto q = static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));  // exact scaling, RNE
    return float16{static_cast<uint16_t>(sign | q)};
  }
  uint32_t rounding_bias = 0xfffu + ((abs >> 13) & 1u);
  uint32_t r = abs + rounding_bias;
  return float16{static_cast<uint16_t>(sign | (((r >> 23) - 112u) << 10) | ((r >> 13) & 0x3ffu))};
}

float e4m3_to_float(float8_e4m3 v) {
  uint32_t exp = (v.bits >> 3) & 0xfu;
  uint32_t mant = v.bits & 0x7u;
  bool negative = (v.bits & 0x80u) != 0;
  float magnitude;
  if (exp == 0xf && mant == 0x7) {
    magnitude = std::nanf("");
  } else if (exp == 0) {
    magnitude = std::ldexp(static_cast<float>(mant), -9);  // subnormal: m * 2^-9
  } else {
    magnitude = std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, static_cast<int>(exp) - 7);
  }
  return negative ? -magnitude : magnitude;
}

float8_e4m3 float_to_e4m3(float f) {
  uint8_t sign = (float_bits(f) >> 24) & 0x80u;
  if (std::isnan(f)) return float8_e4m3{static_cast<uint8_t>(sign | 0x7fu)};
  float a = std::fabs(f);
  if (a >= kE4M3Max) return float8_e4m3{static_cast<uint8_t>(sign | 0x7eu)};  // saturate
  uint8_t code;
  if (a < 0.015625f) {  // below 2^-6: subnormals, multiples of 2^-9 (code 8 is 2^-6 itself)
    code = static_cast<uint8_t>(std::nearbyint(a * 512.0f));
  } else {
    int e;
    float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
    // a = (1 + q/8) * 2^(e-1): q = (2m - 1) * 8 is exact in float; round it to nearest even.
    auto q = static_cast<int>(std::nearbyint((2.0f * m - 1.0f) * 8.0f));
    int biased = e - 1 + 7;
    if (q == 8) {
      q = 0;
      ++biased;
    }
    code = static_cast<uint8_t>((biased << 3) | q);
    if (code > 0x7e) code = 0x7e;  // rounding up past 448 saturates too
  }
  return float8_e4m3{static_cast<uint8_t>(sign | code)};
}

}  // namespace mlaserve
