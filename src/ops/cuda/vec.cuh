// Vector loads and stores of activations as fp32 registers, for the small CUDA ops.
//
// A "vector" is kVec consecutive elements: kVec = 8 is one 16-byte access for bf16 (two for f32),
// the width memory-bound kernels want; kVec = 1 is the fallback for rows whose width or base is
// not a multiple of 8 elements (tiny test models). Conversions are exact (bf16 -> f32) or round
// to nearest even (f32 -> bf16, __float2bfloat16_rn, the same rounding as dtype.h).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace mlaserve::ops::gpu {

// The 8 bf16 of one 16-byte vector as fp32 (exact), for kernels that load the vector themselves
// (through L2 only, say).
__device__ __forceinline__ void unpack_bf16x8(const uint4& raw, float (&v)[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    v[2 * i] = f.x;
    v[2 * i + 1] = f.y;
  }
}

template <int kVec>
__device__ __forceinline__ void load_vec(const __nv_bfloat16* p, float (&v)[kVec]) {
  static_assert(kVec == 1 || kVec == 8, "vectors are 1 or 8 elements");
  if constexpr (kVec == 8) {
    unpack_bf16x8(*reinterpret_cast<const uint4*>(p), v);
  } else {
    v[0] = __bfloat162float(*p);
  }
}

template <int kVec>
__device__ __forceinline__ void load_vec(const float* p, float (&v)[kVec]) {
  static_assert(kVec == 1 || kVec == 8, "vectors are 1 or 8 elements");
  if constexpr (kVec == 8) {
    const float4 a = reinterpret_cast<const float4*>(p)[0];
    const float4 b = reinterpret_cast<const float4*>(p)[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else {
    v[0] = *p;
  }
}

template <int kVec>
__device__ __forceinline__ void store_vec(__nv_bfloat16* p, const float (&v)[kVec]) {
  static_assert(kVec == 1 || kVec == 8, "vectors are 1 or 8 elements");
  if constexpr (kVec == 8) {
    uint4 raw;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
    *reinterpret_cast<uint4*>(p) = raw;
  } else {
    *p = __float2bfloat16_rn(v[0]);
  }
}

template <int kVec>
__device__ __forceinline__ void store_vec(float* p, const float (&v)[kVec]) {
  static_assert(kVec == 1 || kVec == 8, "vectors are 1 or 8 elements");
  if constexpr (kVec == 8) {
    reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
    *p = v[0];
  }
}

// kVec bf16 as stored (one 16-byte vector, or one element), for kernels that keep many vectors
// in flight: held like this until they are used, they take half the registers of load_vec's
// floats. unpack_vec converts exactly as load_vec does.
template <int kVec>
struct Bf16Vec;
template <>
struct Bf16Vec<8> {
  uint4 bits;
};
template <>
struct Bf16Vec<1> {
  __nv_bfloat16 bits;
};

template <int kVec>
__device__ __forceinline__ Bf16Vec<kVec> load_bf16_vec(const __nv_bfloat16* p) {
  static_assert(kVec == 1 || kVec == 8, "vectors are 1 or 8 elements");
  if constexpr (kVec == 8) {
    return {*reinterpret_cast<const uint4*>(p)};
  } else {
    return {*p};
  }
}

template <int kVec>
__device__ __forceinline__ void unpack_vec(const Bf16Vec<kVec>& raw, float (&v)[kVec]) {
  if constexpr (kVec == 8) {
    unpack_bf16x8(raw.bits, v);
  } else {
    v[0] = __bfloat162float(raw.bits);
  }
}

template <int kVec>
__device__ __forceinline__ void fill_vec(float (&v)[kVec], float x) {
#pragma unroll
  for (int i = 0; i < kVec; ++i) v[i] = x;
}

// Element i of an index tensor stored as i32 (is_i64 false) or i64.
__device__ __forceinline__ int64_t load_index(const void* p, bool is_i64, int64_t i) {
  return is_i64 ? static_cast<const int64_t*>(p)[i] : static_cast<const int32_t*>(p)[i];
}

}  // namespace mlaserve::ops::gpu
