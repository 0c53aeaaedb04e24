// Element types and exact scalar conversions (host side; CUDA code uses the cuda_bf16 / cuda_fp8
// intrinsics, which these match bit for bit).
//
//   bf16:      1 sign, 8 exponent, 7 mantissa. float -> bf16 rounds to nearest even; NaN stays
//              a quiet NaN with its sign; infinities are kept.
//   f16:       IEEE binary16. float -> f16 rounds to nearest even; overflow gives infinity.
//   f8e4m3fn:  1 sign, 4 exponent (bias 7), 3 mantissa; no infinities; S.1111.111 is NaN; the
//              largest finite value is 448. float -> e4m3 rounds to nearest even and saturates
//              to +-448 (infinities too, as DeepSeek's quantiser expects); NaN maps to NaN.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace mlaserve {

enum class DType : uint8_t { kF32, kF16, kBF16, kF8E4M3, kI64, kI32, kU8, kBool };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);  // safetensors spelling: "F32", "BF16", "F8_E4M3"...
// Parses the safetensors spelling; returns false for names this engine does not know.
bool parse_dtype(std::string_view name, DType* out);

// Storage types for the 16- and 8-bit floats: distinct types so that a Tensor's data_as<T>()
// can check the dtype.
struct bfloat16 {
  uint16_t bits;
};
struct float16 {
  uint16_t bits;
};
struct float8_e4m3 {
  uint8_t bits;
};

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float bf16_to_float(bfloat16 h) { return bits_float(static_cast<uint32_t>(h.bits) << 16); }

inline bfloat16 float_to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep the sign, force a quiet NaN
    return bfloat16{static_cast<uint16_t>((u >> 16) | 0x0040u)};
  }
  uint32_t rounding_bias = 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return bfloat16{static_cast<uint16_t>((u + rounding_bias) >> 16)};
}

// Rounds a float to the nearest bf16 value and back (the rounding of a bf16 store).
inline float round_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

float f16_to_float(float16 h);
float16 float_to_f16(float f);

float e4m3_to_float(float8_e4m3 v);
float8_e4m3 float_to_e4m3(float f);

inline constexpr float kE4M3Max = 448.0f;

}  // namespace mlaserve
