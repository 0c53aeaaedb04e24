// The row norm's device steps shared by rms_norm.cu's kernel and moe_combine_add_rms_norm_kernel
// (moe_combine_norm.cuh), which promises rms_norm's bits: the norm weight's load, the row's
// 1 / rms from the threads' sums of squares, and the second pass that writes the scaled output
// and, for the FP8 forms (ops/rms_norm_fp8.h), its quantisation. The CTA shape and the order of
// the sums: rms_norm_heuristics.h.
//
// The quantisation inside the second pass: thread i owns vectors i, i + threads, .. (8 elements
// each), so the 16 vectors of a 128-channel group are 16 consecutive threads of one round, a
// half-warp (the thread count is a multiple of 32); each half-warp reduces its group's amax by
// shuffles (group_act_scale, fp8_quant.cuh) over the normed values as stored (bf16-rounded) and
// writes 8 codes a lane and the group's scale: quantize_activations_fp8_cuda's arithmetic on
// out's bits. Every thread runs the same rounds (lanes past the row hold zeros, which leave the
// amax as it is), so that whole warps reach the shuffles.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>
#include <string_view>

#include "core/tensor.h"
#include "ops/cuda/fp8_quant.cuh"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/reduce.cuh"
#include "ops/cuda/vec.cuh"
#include "ops/fp8_block.h"
#include "ops/fp8_quant.h"

namespace mlaserve::ops::gpu {

// Elements i .. i + kVec - 1 of the norm weight ([d] bf16 or f32) as fp32.
template <int kVec>
__device__ __forceinline__ void load_norm_weight(const void* weight, bool weight_bf16, int64_t i, float (&w)[kVec]) {
  if (weight_bf16) {
    load_vec<kVec>(static_cast<const __nv_bfloat16*>(weight) + i, w);
  } else {
    load_vec<kVec>(static_cast<const float*>(weight) + i, w);
  }
}

// write_normed_row's load_weight for a norm weight read from memory (load_norm_weight).
template <int kVec>
__device__ __forceinline__ auto norm_weight_loader(const void* weight, bool weight_bf16) {
  return [=](int64_t c, float(&w)[kVec]) { load_norm_weight<kVec>(weight, weight_bf16, c * kVec, w); };
}

// 1 / rms of a row of d elements from each thread's fp32 sum of squares: block_sum (every thread
// of the CTA calls it; scratch holds a float a warp), then 1 / sqrt(total / d + eps).
__device__ __forceinline__ float row_inv_rms(float sum_sq, float* scratch, int64_t d, float eps) {
  const float total = block_sum(sum_sq, scratch);
  return 1.0f / sqrtf(total / static_cast<float>(d) + eps);
}

// The wide shape's sum of squares (rms_norm_heuristics.h, rms_norm_wide): thread c < vectors of
// the CTA (one thread a vector) passes its vector's values v (in = c < vectors), and thread i <
// sum_threads gets what thread i of the narrow shape of sum_threads threads sums in its first pass
// (v² over vectors i, i + sum_threads, .. element by element, the same expression); the others get
// 0, which block_sum adds without changing a bit (every partial is >= +0). vals holds kVec floats a
// thread of the CTA. Every thread of the CTA calls it; the caller syncs before vals is reused.
template <int kVec>
__device__ __forceinline__ float wide_row_sum_sq(const float (&v)[kVec], bool in, float* vals, int64_t vectors,
                                                 int sum_threads) {
  if (in) {
#pragma unroll
    for (int i = 0; i < kVec; ++i) vals[threadIdx.x * kVec + i] = v[i];
  }
  __syncthreads();
  float sum_sq = 0.0f;
  if (static_cast<int>(threadIdx.x) < sum_threads) {
    for (int64_t c = threadIdx.x; c < vectors; c += sum_threads) {
#pragma unroll
      for (int i = 0; i < kVec; ++i) {
        const float x = vals[c * kVec + i];
        sum_sq += x * x;
      }
    }
  }
  return sum_sq;
}

// v = w · (v · inv_rms), element by element (the caller rounds v once when it stores it).
template <int kVec>
__device__ __forceinline__ void scale_by_norm(float (&v)[kVec], const float (&w)[kVec], float inv_rms) {
#pragma unroll
  for (int i = 0; i < kVec; ++i) v[i] = w[i] * (v[i] * inv_rms);
}

// Where a row norm's second pass also writes the FP8 quantisation of its output (x_q null: it
// does not).
struct NormFp8Out {
  __nv_fp8_e4m3* x_q;  // [rows, d] e4m3
  float* scales;       // [rows, G] f32, G = ceil(d / 128)
  float* scales_t;     // [G, rows] f32 (group-major), or null
  int64_t rows;        // the group-major row stride
  float amax_floor;
  bool ue8m0;          // scales rounded up to powers of two
};

// Host: an FP8 norm form's request, the quantisation's parameters and the caller's outputs
// (rms_norm.cu, moe_combine_norm.cu; null: the plain norm).
struct NormFp8Request {
  const ActQuantParams& act;
  Fp8Activations& out_q;
};

// Host: checks a request's out_q against the norm's output out [T, K] (ops/rms_norm_fp8.h) and says
// where the kernel writes it: x_q null without a request, or where the second pass cannot quantise
// (not the 16-byte path, or x_q not 8-byte aligned); quantize_unfused then quantises out after
// the norm.
inline NormFp8Out norm_fp8_out(std::string_view op, const Tensor& out, const NormFp8Request* request, bool vec8) {
  if (request == nullptr) return NormFp8Out{};
  const ActQuantParams& act = request->act;
  const Fp8Activations& out_q = request->out_q;
  MLA_CHECK(out.ndim() == 2, "{}: the quantised forms take x [T, K], got {}", op, shape_str(out.shape()));
  MLA_CHECK(act.amax_floor > 0.0f, "{}: amax_floor must be positive, got {}", op, act.amax_floor);
  const int64_t t = out.dim(0), k = out.dim(1), g = fp8_num_blocks(k);
  check_dtype(op, "x_q", out_q.x_q, DType::kF8E4M3);
  check_shape(op, "x_q", out_q.x_q, {t, k});
  check_dtype(op, "scales", out_q.scales, DType::kF32);
  check_shape(op, "scales", out_q.scales, {t, g});
  if (out_q.scales_t.defined()) {
    check_dtype(op, "scales_t", out_q.scales_t, DType::kF32);
    check_shape(op, "scales_t", out_q.scales_t, {g, t});
  }
  if (!vec8 || reinterpret_cast<uintptr_t>(out_q.x_q.raw()) % 8 != 0) return NormFp8Out{};
  return NormFp8Out{ptr<__nv_fp8_e4m3>(out_q.x_q),
                    ptr<float>(out_q.scales),
                    out_q.scales_t.defined() ? ptr<float>(out_q.scales_t) : nullptr,
                    t,
                    act.amax_floor,
                    act.scale_format == Fp8ScaleFormat::kUE8M0};
}

// Host, after the norm's launch: the quantiser pass over out where a request's kernel did not
// quantise (fused.x_q null).
inline void quantize_unfused(const NormFp8Request* request, const NormFp8Out& fused, const Tensor& out,
                             cudaStream_t stream) {
  if (request == nullptr || fused.x_q != nullptr) return;
  quantize_activations_fp8_cuda(out, request->act, request->out_q, stream);
}

// The second pass over row r of d elements: for each of this thread's vectors c, v = load(c, v)
// (the row's values, or its updated residual) and w = load_weight(c, w) (the norm weight's vector
// c: norm_weight_loader, or registers the caller filled before), out_row[c] = bf16(w · (v ·
// inv_rms)); with kQuant also codes and scales of q's row r (the note at the top; kVec 8 only).
// Every thread of the CTA calls it.
template <int kVec, bool kQuant, typename Load, typename LoadWeight>
__device__ __forceinline__ void write_normed_row(int64_t d, float inv_rms, __nv_bfloat16* out_row, const NormFp8Out& q,
                                                 int64_t r, Load load, LoadWeight load_weight) {
  static_assert(!kQuant || kVec == 8, "the fused quantisation takes 16-byte vectors");
  const int64_t vectors = d / kVec;
  if constexpr (!kQuant) {
    for (int64_t c = threadIdx.x; c < vectors; c += blockDim.x) {
      float v[kVec], w[kVec];
      load(c, v);
      load_weight(c, w);
      scale_by_norm<kVec>(v, w, inv_rms);
      store_vec<kVec>(out_row + c * kVec, v);
    }
  } else {
    const int64_t groups = (d + 127) / 128;
    for (int64_t c0 = 0; c0 < vectors; c0 += blockDim.x) {
      const int64_t c = c0 + threadIdx.x;
      const bool in = c < vectors;
      float v[8] = {};
      if (in) {
        float w[8];
        load(c, v);
        load_weight(c, w);
        scale_by_norm<8>(v, w, inv_rms);
        store_vec<8>(out_row + c * 8, v);
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = __bfloat162float(__float2bfloat16_rn(v[i]));  // out's value
      }
      const float scale = group_act_scale<16, 8>(v, q.amax_floor, q.ue8m0);  // group c / 16
      const uint2 codes = quantize_e4m3x8(v, scale);
      if (!in) continue;
      *reinterpret_cast<uint2*>(q.x_q + r * d + c * 8) = codes;
      if (c % 16 == 0) {
        q.scales[r * groups + c / 16] = scale;
        if (q.scales_t != nullptr) q.scales_t[c / 16 * q.rows + r] = scale;
      }
    }
  }
}

}  // namespace mlaserve::ops::gpu
