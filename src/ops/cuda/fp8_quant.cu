// quantize_activations_fp8_cuda and silu_mul_quantize_fp8_cuda (contract: ops/fp8_quant.h).
//
// Design: memory-bound, one warp per (token, 128-channel group). Each lane holds four of the
// group's values in fp32 (bf16 -> f32 is exact; the SwiGLU variant computes silu(g) · u from
// its gate and up inputs first, with expf as silu_mul.cu does), the warp reduces the amax with
// shuffles, and every lane divides its values by the group's scale and converts them to e4m3
// with the hardware's round-to-nearest-even, saturating conversion (cvt.rn.satfinite: finite
// values beyond ±448 and infinities become ±448, NaN stays NaN, as dtype.h's float_to_e4m3).
// The scale and the quotient use IEEE division (__fdiv_rn), so for the same fp32 inputs the
// result is bit-identical to quantize_activations_fp8_cpu. Lane 0 writes the scale, token-major
// [T, G] or group-major [G, T] (Fp8ScaleLayout: cuBLASLt's layout, a strided write of one float a
// group, so the FP8 linear's cuBLASLt path needs no transpose pass), and with a second scale
// output (Fp8Activations::scales_t) the same scale group-major there too: one pass for both.
// Fast path (K a multiple of 8, 16-byte aligned rows): a half-warp per group, lane l of it
// owning channels 8l .. 8l+7 (one 16-byte load, two with SwiGLU; one 8-byte store), and each warp
// issuing the loads of kVecItems groups (consecutive in memory) before it reduces any: at 4 a warp
// the SMs keep about four times the bytes in flight of a warp per group with 8-byte loads, which
// is what the HBM rate needs at prefill sizes (a V2-Lite step's 9,600 gathered rows of 2,048
// channels: 32 us before, its bytes take ~12). A partial last group (K = 10,944: 85.5 groups)
// leaves the lanes past K idle; a warp past the last group returns at once. Otherwise lane l of a
// warp owns l, l+32, l+64, l+96 (any K, any alignment).
//
// Idle lanes and zeros. A zero dividend takes div.rn.f32's slow path (a called subroutine of ~60
// instructions), so neither division here divides a zero: fp8_act_quantize and silu_mul_exact
// (fp8_quant.cuh) return the zero itself (ops/cuda/div_rn.cuh). At decode sizes the SwiGLU
// quantiser is one CTA or a few, whose warps past the last group (or past its half) once
// ran 16 of those subroutines in a chain each, longer than the work: in a V3 TP8 rank's decode
// graph at one token (its shared expert's 256 channels, its dense MLP's 2,304) a call took 6.3-9
// us, now 2.7-3.3 (H200 traces, bench/NOTES-engine.md, thirty-eighth session).
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/fp8_quant.cuh"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/vec.cuh"
#include "ops/fp8_quant.h"

namespace mlaserve::ops {
namespace {

constexpr int kThreads = 256;  // 8 warps
constexpr int kWarps = kThreads / 32;
constexpr int kVecItems = 4;  // fast path: groups a warp, two a half-warp at a time

struct Fp8QuantParams {
  const __nv_bfloat16* x;  // row t at x + t * x_stride: K values, or with SwiGLU the gate (K
                           // values) followed by the up half at x + t * x_stride + K
  __nv_fp8_e4m3* x_q;      // [T, K]
  float* scales;           // (row, group) at row * scale_row_stride + group * scale_group_stride
  int64_t scale_row_stride;    // G ([T, G] scales) or 1 ([G, T])
  int64_t scale_group_stride;  // 1 or T
  float* scales_t;         // [G, T] the same scales group-major, or null: not written
  int64_t rows;            // T
  int64_t k;               // K
  int64_t x_stride;        // K, or 2K with SwiGLU
  int64_t groups;          // G = ceil(K / 128)
  float amax_floor;
  bool ue8m0;              // scale rounded up to a power of two
};

// The scale of (row, group) into p.scales, and into p.scales_t when it is there.
__device__ __forceinline__ void store_scale(const Fp8QuantParams& p, int64_t row, int64_t group, float scale) {
  p.scales[row * p.scale_row_stride + group * p.scale_group_stride] = scale;
  if (p.scales_t != nullptr) p.scales_t[group * p.rows + row] = scale;
}

// The fast path (the note at the top): warp w of the grid takes groups [kVecItems w, kVecItems
// (w + 1)) of the row-major (row, group) items, half-warp h the items kVecItems w + 2u + h.
template <bool kSwiGlu>
__global__ void __launch_bounds__(kThreads) fp8_quant_vec8_kernel(Fp8QuantParams p) {
  const int lane = static_cast<int>(threadIdx.x) & 31, half = lane / 16, l16 = lane % 16;
  const int64_t first = (int64_t{blockIdx.x} * kWarps + (threadIdx.x >> 5)) * kVecItems;
  const int64_t items = p.rows * p.groups;
  if (first >= items) return;  // the whole warp: no shuffle partner is left behind
  constexpr int kRounds = kVecItems / 2;

  uint4 raw[kRounds], raw_up[kRounds];
  int64_t row[kRounds], group[kRounds];  // of the lane's item in each round
  bool in[kRounds];                      // the item exists and the lane's 8 channels lie inside K
#pragma unroll
  for (int u = 0; u < kRounds; ++u) {  // every load first
    const int64_t item = first + 2 * u + half;
    row[u] = item / p.groups;
    group[u] = item - row[u] * p.groups;
    const int64_t c = group[u] * 128 + 8 * l16;
    in[u] = item < items && c < p.k;
    const __nv_bfloat16* src = p.x + row[u] * p.x_stride + c;
    raw[u] = in[u] ? *reinterpret_cast<const uint4*>(src) : make_uint4(0, 0, 0, 0);
    if constexpr (kSwiGlu) raw_up[u] = in[u] ? *reinterpret_cast<const uint4*>(src + p.k) : make_uint4(0, 0, 0, 0);
  }
#pragma unroll
  for (int u = 0; u < kRounds; ++u) {
    float v[8];
    gpu::unpack_bf16x8(raw[u], v);
    if constexpr (kSwiGlu) {
      float up[8];
      gpu::unpack_bf16x8(raw_up[u], up);
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = gpu::silu_mul_exact(v[i], up[i]);
    }
    // The half-warp's group (lanes past K hold zeros, which leave the amax as it is).
    const float scale = gpu::group_act_scale<16, 8>(v, p.amax_floor, p.ue8m0);
    const uint2 codes = gpu::quantize_e4m3x8(v, scale);
    if (!in[u]) continue;
    *reinterpret_cast<uint2*>(p.x_q + row[u] * p.k + group[u] * 128 + 8 * l16) = codes;
    if (l16 == 0) store_scale(p, row[u], group[u], scale);
  }
}

// Any K and alignment: lane l of the warp of group (row, g) owns channels l, l+32, l+64, l+96.
template <bool kSwiGlu>
__global__ void __launch_bounds__(kThreads) fp8_quant_kernel(Fp8QuantParams p) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int64_t item = int64_t{blockIdx.x} * kWarps + (threadIdx.x >> 5);  // (row, group), row-major
  if (item >= p.rows * p.groups) return;
  const int64_t row = item / p.groups, g = item - row * p.groups;
  const int64_t c0 = g * 128;
  const __nv_bfloat16* src = p.x + row * p.x_stride;

  float v[4];
  bool valid[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t c = c0 + lane + 32 * i;
    valid[i] = c < p.k;
    v[i] = valid[i] ? __bfloat162float(src[c]) : 0.0f;
    if constexpr (kSwiGlu) {
      if (valid[i]) v[i] = gpu::silu_mul_exact(v[i], __bfloat162float(src[p.k + c]));
    }
  }

  const float scale = gpu::group_act_scale<32, 4>(v, p.amax_floor, p.ue8m0);

  __nv_fp8_storage_t* dst = reinterpret_cast<__nv_fp8_storage_t*>(p.x_q + row * p.k);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if (valid[i]) dst[c0 + lane + 32 * i] = gpu::fp8_act_quantize(v[i], scale);
  }
  if (lane == 0) store_scale(p, row, g, scale);
}

template <bool kSwiGlu>
void launch(const Fp8QuantParams& p, cudaStream_t stream) {
  const int64_t items = p.rows * p.groups;
  if (items == 0) return;
  const bool vec8 = p.k % 8 == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0 && p.x_stride % 8 == 0 &&
                    reinterpret_cast<uintptr_t>(p.x_q) % 8 == 0;
  const int64_t per_block = vec8 ? kWarps * kVecItems : kWarps;
  const int64_t blocks = (items + per_block - 1) / per_block;
  MLA_CHECK(blocks < (int64_t{1} << 31), "fp8 quantisation: {} x {} groups exceed the grid", p.rows, p.groups);
  const auto grid = static_cast<unsigned>(blocks);
  if (vec8) {
    fp8_quant_vec8_kernel<kSwiGlu><<<grid, kThreads, 0, stream>>>(p);
  } else {
    fp8_quant_kernel<kSwiGlu><<<grid, kThreads, 0, stream>>>(p);
  }
  MLA_CUDA_CHECK_LAUNCH();
}

// scales_t: undefined, or a second output of the same scales group-major ([G, T]).
Fp8QuantParams make_params(std::string_view op, const Tensor& x, int64_t k, const ActQuantParams& params,
                           Tensor& x_q, Tensor& scales, Fp8ScaleLayout layout = Fp8ScaleLayout::kTokenMajor,
                           const Tensor& scales_t = Tensor()) {
  gpu::check_dtype(op, "x", x, DType::kBF16);
  gpu::check_dtype(op, "x_q", x_q, DType::kF8E4M3);
  gpu::check_dtype(op, "scales", scales, DType::kF32);
  MLA_CHECK(params.amax_floor > 0.0f, "{}: amax_floor must be positive, got {}", op, params.amax_floor);
  const int64_t t = x.dim(0);
  gpu::check_shape(op, "x_q", x_q, {t, k});
  const int64_t g = fp8_num_blocks(k);
  const bool group_major = layout == Fp8ScaleLayout::kGroupMajor;
  gpu::check_shape(op, "scales", scales, group_major ? Shape{g, t} : Shape{t, g});
  if (scales_t.defined()) {
    gpu::check_dtype(op, "scales_t", scales_t, DType::kF32);
    gpu::check_shape(op, "scales_t", scales_t, {g, t});
  }
  return Fp8QuantParams{gpu::ptr<const __nv_bfloat16>(x),
                        gpu::ptr<__nv_fp8_e4m3>(x_q),
                        gpu::ptr<float>(scales),
                        group_major ? 1 : g,
                        group_major ? t : 1,
                        scales_t.defined() ? gpu::ptr<float>(scales_t) : nullptr,
                        t,
                        k,
                        x.dim(1),
                        g,
                        params.amax_floor,
                        params.scale_format == Fp8ScaleFormat::kUE8M0};
}

// Both public forms of quantize_activations_fp8_cuda (scales_t: undefined or the second output).
void quantize_rows(const Tensor& x, const ActQuantParams& params, Tensor& x_q, Tensor& scales, Fp8ScaleLayout layout,
                   const Tensor& scales_t, cudaStream_t stream) {
  constexpr std::string_view kOp = "quantize_activations_fp8_cuda";
  MLA_CHECK(x.ndim() == 2, "{}: x {} must be [T, K]", kOp, shape_str(x.shape()));
  launch<false>(make_params(kOp, x, x.dim(1), params, x_q, scales, layout, scales_t), stream);
}

}  // namespace

void quantize_activations_fp8_cuda(const Tensor& x, const ActQuantParams& params, Tensor& x_q, Tensor& scales,
                                   cudaStream_t stream, Fp8ScaleLayout layout) {
  quantize_rows(x, params, x_q, scales, layout, Tensor(), stream);
}

void quantize_activations_fp8_cuda(const Tensor& x, const ActQuantParams& params, Fp8Activations& out,
                                   cudaStream_t stream) {
  quantize_rows(x, params, out.x_q, out.scales, Fp8ScaleLayout::kTokenMajor, out.scales_t, stream);
}

void silu_mul_quantize_fp8_cuda(const Tensor& gate_up, const ActQuantParams& params, Fp8Activations& out,
                                cudaStream_t stream) {
  constexpr std::string_view kOp = "silu_mul_quantize_fp8_cuda";
  MLA_CHECK(gate_up.ndim() == 2 && gate_up.dim(1) % 2 == 0, "{}: gate_up {} must be [T, 2·I]", kOp,
            shape_str(gate_up.shape()));
  launch<true>(make_params(kOp, gate_up, gate_up.dim(1) / 2, params, out.x_q, out.scales,
                           Fp8ScaleLayout::kTokenMajor, out.scales_t),
               stream);
}

}  // namespace mlaserve::ops
