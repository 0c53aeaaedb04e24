// quantize_activations_fp8_cuda and silu_mul_quantize_fp8_cuda (contract: ops/fp8_quant.h).
//
// Design: memory-bound, one warp per (token, 128-channel group). Each lane holds four of the
// group's values in fp32 (bf16 -> f32 is exact; the SwiGLU variant computes silu(g) · u from
// its gate and up inputs first, with expf as silu_mul.cu does), the warp reduces the amax with
// shuffles, and every lane divides its values by the group's scale and converts them to e4m3
// with the hardware's round-to-nearest-even, saturating conversion (cvt.rn.satfinite: finite
// values beyond ±448 and infinities become ±448, NaN stays NaN, as dtype.h's float_to_e4m3).
// The scale and the quotient use IEEE division (__fdiv_rn), so for the same fp32 inputs the
// result is bit-identical to quantize_activations_fp8_cpu. Lane 0 writes the scale.
// Fast path (K a multiple of 128, 8-byte aligned rows): lane l owns channels 4l .. 4l+3 (one
// 8-byte load, one 4-byte store); otherwise lane l owns l, l+32, l+64, l+96 (partial last group).
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/fp8_quant.cuh"
#include "ops/cuda/gpu_checks.h"
#include "ops/fp8_quant.h"

namespace mlaserve::ops {
namespace {

constexpr int kThreads = 256;  // 8 warps, 8 groups per block
constexpr int kWarps = kThreads / 32;

struct Fp8QuantParams {
  const __nv_bfloat16* x;  // row t at x + t * x_stride: K values, or with SwiGLU the gate (K
                           // values) followed by the up half at x + t * x_stride + K
  __nv_fp8_e4m3* x_q;      // [T, K]
  float* scales;           // [T, G]
  int64_t rows;            // T
  int64_t k;               // K
  int64_t x_stride;        // K, or 2K with SwiGLU
  int64_t groups;          // G = ceil(K / 128)
  float amax_floor;
  bool ue8m0;              // scale rounded up to a power of two
};

template <bool kVec4, bool kSwiGlu>
__global__ void __launch_bounds__(kThreads) fp8_quant_kernel(Fp8QuantParams p) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int64_t item = int64_t{blockIdx.x} * kWarps + (threadIdx.x >> 5);  // (row, group), row-major
  if (item >= p.rows * p.groups) return;
  const int64_t row = item / p.groups, g = item - row * p.groups;
  const int64_t c0 = g * 128;
  const __nv_bfloat16* src = p.x + row * p.x_stride;

  float v[4];
  bool valid[4];
  if constexpr (kVec4) {
    const int64_t c = c0 + 4 * lane;
    const uint2 raw = *reinterpret_cast<const uint2*>(src + c);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
    const float2 a = __bfloat1622float2(h[0]), b = __bfloat1622float2(h[1]);
    v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
    if constexpr (kSwiGlu) {
      const uint2 raw_up = *reinterpret_cast<const uint2*>(src + p.k + c);
      const __nv_bfloat162* hu = reinterpret_cast<const __nv_bfloat162*>(&raw_up);
      const float2 ua = __bfloat1622float2(hu[0]), ub = __bfloat1622float2(hu[1]);
      const float u[4] = {ua.x, ua.y, ub.x, ub.y};
#pragma unroll
      for (int i = 0; i < 4; ++i) v[i] = v[i] / (1.0f + expf(-v[i])) * u[i];
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) valid[i] = true;
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t c = c0 + lane + 32 * i;
      valid[i] = c < p.k;
      v[i] = valid[i] ? __bfloat162float(src[c]) : 0.0f;
      if constexpr (kSwiGlu) {
        if (valid[i]) v[i] = v[i] / (1.0f + expf(-v[i])) * __bfloat162float(src[p.k + c]);
      }
    }
  }

  float amax = p.amax_floor;
#pragma unroll
  for (int i = 0; i < 4; ++i) amax = fmaxf(amax, fabsf(v[i]));  // fmaxf skips NaN, as std::max does
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, d));
  const float scale = gpu::fp8_act_scale(amax, p.ue8m0);

  __nv_fp8_storage_t q[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) q[i] = gpu::fp8_act_quantize(v[i], scale);
  __nv_fp8_storage_t* dst = reinterpret_cast<__nv_fp8_storage_t*>(p.x_q + row * p.k);
  if constexpr (kVec4) {
    const uint32_t packed = uint32_t{q[0]} | uint32_t{q[1]} << 8 | uint32_t{q[2]} << 16 | uint32_t{q[3]} << 24;
    *reinterpret_cast<uint32_t*>(dst + c0 + 4 * lane) = packed;
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if (valid[i]) dst[c0 + lane + 32 * i] = q[i];
    }
  }
  if (lane == 0) p.scales[row * p.groups + g] = scale;
}

template <bool kSwiGlu>
void launch(const Fp8QuantParams& p, cudaStream_t stream) {
  const int64_t items = p.rows * p.groups;
  if (items == 0) return;
  const int64_t blocks = (items + kWarps - 1) / kWarps;
  MLA_CHECK(blocks < (int64_t{1} << 31), "fp8 quantisation: {} x {} groups exceed the grid", p.rows, p.groups);
  const bool vec4 = p.k % 128 == 0 && reinterpret_cast<uintptr_t>(p.x) % 8 == 0 && p.x_stride % 4 == 0 &&
                    reinterpret_cast<uintptr_t>(p.x_q) % 4 == 0;
  const auto grid = static_cast<unsigned>(blocks);
  if (vec4) {
    fp8_quant_kernel<true, kSwiGlu><<<grid, kThreads, 0, stream>>>(p);
  } else {
    fp8_quant_kernel<false, kSwiGlu><<<grid, kThreads, 0, stream>>>(p);
  }
  MLA_CUDA_CHECK_LAUNCH();
}

Fp8QuantParams make_params(std::string_view op, const Tensor& x, int64_t k, const ActQuantParams& params,
                           Tensor& x_q, Tensor& scales) {
  gpu::check_dtype(op, "x", x, DType::kBF16);
  gpu::check_dtype(op, "x_q", x_q, DType::kF8E4M3);
  gpu::check_dtype(op, "scales", scales, DType::kF32);
  MLA_CHECK(params.amax_floor > 0.0f, "{}: amax_floor must be positive, got {}", op, params.amax_floor);
  const int64_t t = x.dim(0);
  gpu::check_shape(op, "x_q", x_q, {t, k});
  gpu::check_shape(op, "scales", scales, {t, fp8_num_blocks(k)});
  return Fp8QuantParams{gpu::ptr<const __nv_bfloat16>(x),
                        gpu::ptr<__nv_fp8_e4m3>(x_q),
                        gpu::ptr<float>(scales),
                        t,
                        k,
                        x.dim(1),
                        fp8_num_blocks(k),
                        params.amax_floor,
                        params.scale_format == Fp8ScaleFormat::kUE8M0};
}

}  // namespace

void quantize_activations_fp8_cuda(const Tensor& x, const ActQuantParams& params, Tensor& x_q, Tensor& scales,
                                   cudaStream_t stream) {
  constexpr std::string_view kOp = "quantize_activations_fp8_cuda";
  MLA_CHECK(x.ndim() == 2, "{}: x {} must be [T, K]", kOp, shape_str(x.shape()));
  launch<false>(make_params(kOp, x, x.dim(1), params, x_q, scales), stream);
}

void silu_mul_quantize_fp8_cuda(const Tensor& gate_up, const ActQuantParams& params, Tensor& x_q, Tensor& scales,
                                cudaStream_t stream) {
  constexpr std::string_view kOp = "silu_mul_quantize_fp8_cuda";
  MLA_CHECK(gate_up.ndim() == 2 && gate_up.dim(1) % 2 == 0, "{}: gate_up {} must be [T, 2·I]", kOp,
            shape_str(gate_up.shape()));
  launch<true>(make_params(kOp, gate_up, gate_up.dim(1) / 2, params, x_q, scales), stream);
}

}  // namespace mlaserve::ops
