// rms_norm and add_rms_norm on the GPU (contract: ops/rms_norm.h; their FP8 forms: ops/rms_norm_fp8.h),
// bf16 activations (add_rms_norm's addend x bf16, or f32: a tensor-parallel sum of partial outputs,
// rounded to bf16 here first).
//
// Design: one CTA per row ([rows, d], d = 512 .. 7168 for DeepSeek), memory-bound (a decode step's
// few wide rows: one thread a vector, the sums in the same order; rms_norm_heuristics.h). Pass 1 reads
// the row in 16-byte vectors (8 bf16), forms v = x, or for add_rms_norm v = bf16(residual + x)
// (an f32 x is rounded to bf16 first: v = bf16(residual + bf16(x)), one GPU's two roundings;
// add_sum_rms_norm's two f32 parts: v = bf16(residual + bf16(bf16(base) + rest)))
// which it stores back into the residual stream (bf16, as HF and vLLM keep it), and sums v² in
// fp32; a warp-shuffle then shared-memory reduction gives mean(v²), and one thread's rsqrt
// argument is the same fp32 value for the whole CTA. Pass 2 re-reads v (from L1/L2: the CTA
// just touched it) and writes out = bf16(w · (v · inv_rms)), all fp32 (REF's order, see the
// header; the wide shape keeps v in registers instead). Every element is read and written by the
// same thread in both passes, so out may be x itself; residual must not alias x or out.
//
// Rows whose width or bases are not multiples of 8 elements take the one-element path.
//
// The FP8 forms (ops/rms_norm_fp8.h) run the same kernel with kQuant: the second pass also
// quantises the row's bf16 output, 128 channels a half-warp (write_normed_row, rms_norm.cuh). They
// need the 16-byte path; on the one-element path the norm runs as above and
// quantize_activations_fp8_cuda after it.
//
// Launched with programmatic dependent launch (pdl.cuh): a CTA first prefetches the norm weight
// into L2 (the wide shape: each thread its vector of it into registers), then waits for the
// kernel before it and lets the next one launch, so the next kernel's launch and weight prefetch
// overlap this one (a decode step runs two of these a layer, one CTA each). The wide shape's second
// pass takes the thread's vector from registers as pass 1 left it (the value it stored), so it
// reads no memory: V3's decode norms, one CTA of 896 threads a row on the step's serial path, made
// one more trip to L2 there (the residual it had just stored and the weight, loaded together).
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/reduce.cuh"
#include "ops/cuda/rms_norm.cuh"
#include "ops/cuda/rms_norm_heuristics.h"
#include "ops/cuda/vec.cuh"
#include "ops/rms_norm.h"
#include "ops/rms_norm_fp8.h"

namespace mlaserve::ops {
namespace {

constexpr int kMaxThreads = gpu::kRmsNormMaxThreads;  // the CTA shape: rms_norm_heuristics.h

template <typename X>
struct RmsNormParams {
  const X* x;                // [rows, d] bf16, or f32 (add_rms_norm's addend only)
  const float* rest;         // [rows, d] add_sum_rms_norm's second part (x is then f32), or null
  __nv_bfloat16* residual;   // [rows, d] add_rms_norm's residual stream (updated), or null
  const void* weight;        // [d] f32 or bf16
  __nv_bfloat16* out;        // [rows, d]; may be x
  int64_t rows;
  int64_t d;
  float eps;
  bool weight_bf16;          // weight is bf16 (else f32)
  bool prefetch_weight;     // weight 16-byte aligned, a multiple of 16 bytes: prefetched into L2
  gpu::NormFp8Out quant;    // the FP8 forms' quantised output (kQuant kernels only)
  int32_t sum_threads;      // kWide: the narrow shape's threads, whose order the sum of squares keeps
};

// grid (min(rows, 65535)), block a multiple of 32, at most kMaxThreads (kWide: one thread a vector,
// at most kRmsNormWideMaxThreads; rms_norm_heuristics.h); launched with launch_programmatic.
// kQuant: also p.quant (kVec 8).
template <int kVec, bool kQuant, bool kWide, typename X>
__global__ void __launch_bounds__(kWide ? gpu::kRmsNormWideMaxThreads : kMaxThreads)
    rms_norm_kernel(RmsNormParams<X> p) {
  constexpr int kThreads = kWide ? gpu::kRmsNormWideMaxThreads : kMaxThreads;
  __shared__ float scratch[kThreads / 32];
  __shared__ float vals[kWide ? kThreads * kVec : 1];  // kWide: each thread's vector (wide_row_sum_sq)
  const int64_t vectors = p.d / kVec;
  // A weight: no kernel of the step writes it. kWide: the thread's vector into registers (one
  // vector a thread, so the second pass reads no memory); otherwise the whole of it into L2.
  float w_wide[kWide ? kVec : 1] = {};
  if constexpr (kWide) {
    if (threadIdx.x < vectors) gpu::load_norm_weight<kVec>(p.weight, p.weight_bf16, threadIdx.x * kVec, w_wide);
  } else if (p.prefetch_weight && threadIdx.x == 0 && blockIdx.x == 0) {
    gpu::prefetch_l2(p.weight, static_cast<uint32_t>(p.d * (p.weight_bf16 ? 2 : 4)));
  }
  gpu::grid_dependency_wait();
  gpu::launch_dependents();
  for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    const X* x = p.x + r * p.d;
    const float* rest = p.rest != nullptr ? p.rest + r * p.d : nullptr;
    __nv_bfloat16* res = p.residual != nullptr ? p.residual + r * p.d : nullptr;
    float sum_sq = 0.0f;
    float v[kVec] = {};  // kWide: the thread's vector, after the loop's one round
    for (int64_t c = threadIdx.x; c < vectors; c += blockDim.x) {
      gpu::load_vec<kVec>(x + c * kVec, v);
      if (res != nullptr) {
        float h[kVec];
        gpu::load_vec<kVec>(res + c * kVec, h);
#pragma unroll
        for (int i = 0; i < kVec; ++i) v[i] = __bfloat162float(__float2bfloat16_rn(v[i]));  // exact for a bf16 x
        if (rest != nullptr) {
          float e[kVec];
          gpu::load_vec<kVec>(rest + c * kVec, e);
#pragma unroll
          for (int i = 0; i < kVec; ++i) v[i] = __bfloat162float(__float2bfloat16_rn(v[i] + e[i]));
        }
#pragma unroll
        for (int i = 0; i < kVec; ++i) v[i] = __bfloat162float(__float2bfloat16_rn(h[i] + v[i]));
        gpu::store_vec<kVec>(res + c * kVec, v);
      }
      if constexpr (!kWide) {
#pragma unroll
        for (int i = 0; i < kVec; ++i) sum_sq += v[i] * v[i];
      }
    }
    if constexpr (kWide) sum_sq = gpu::wide_row_sum_sq<kVec>(v, threadIdx.x < vectors, vals, vectors, p.sum_threads);
    const float inv_rms = gpu::row_inv_rms(sum_sq, scratch, p.d, p.eps);
    if constexpr (kWide) {  // the thread's one vector, threadIdx.x: v as pass 1 left it (and stored it), w as loaded
      gpu::write_normed_row<kVec, kQuant>(
          p.d, inv_rms, p.out + r * p.d, p.quant, r,
          [&](int64_t, float(&u)[kVec]) {
#pragma unroll
            for (int i = 0; i < kVec; ++i) u[i] = v[i];
          },
          [&](int64_t, float(&w)[kVec]) {
#pragma unroll
            for (int i = 0; i < kVec; ++i) w[i] = w_wide[i];
          });
    } else {
      gpu::write_normed_row<kVec, kQuant>(
          p.d, inv_rms, p.out + r * p.d, p.quant, r,
          [&](int64_t c, float(&u)[kVec]) {
            if (res != nullptr) {
              gpu::load_vec<kVec>(res + c * kVec, u);
            } else {
              gpu::load_vec<kVec>(x + c * kVec, u);
            }
          },
          gpu::norm_weight_loader<kVec>(p.weight, p.weight_bf16));
    }
    __syncthreads();  // scratch is reused by the next row
  }
}

template <typename X>
void launch_kernel(RmsNormParams<X> p, bool vec8, cudaStream_t stream) {
  const int64_t vectors = vec8 ? p.d / 8 : p.d;
  p.sum_threads = gpu::rms_norm_threads(vectors);
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(p.rows, 65535));
  if (vec8 && gpu::rms_norm_wide(p.rows, vectors)) {
    const int threads = gpu::rms_norm_wide_threads(vectors);
    if (p.quant.x_q != nullptr) {
      gpu::launch_programmatic(rms_norm_kernel<8, true, true, X>, blocks, threads, 0, stream, p);
    } else {
      gpu::launch_programmatic(rms_norm_kernel<8, false, true, X>, blocks, threads, 0, stream, p);
    }
  } else if (p.quant.x_q != nullptr) {  // (norm_fp8_out sets it on the 16-byte path only)
    gpu::launch_programmatic(rms_norm_kernel<8, true, false, X>, blocks, p.sum_threads, 0, stream, p);
  } else if (vec8) {
    gpu::launch_programmatic(rms_norm_kernel<8, false, false, X>, blocks, p.sum_threads, 0, stream, p);
  } else {
    gpu::launch_programmatic(rms_norm_kernel<1, false, false, X>, blocks, p.sum_threads, 0, stream, p);
  }
}

void launch(std::string_view op, const Tensor& x, const Tensor* rest, Tensor* residual, const Tensor& weight,
            float eps, Tensor& out, cudaStream_t stream, const gpu::NormFp8Request* quant = nullptr) {
  if (rest != nullptr) {
    gpu::check_dtype(op, "base", x, DType::kF32);
    gpu::check_dtype(op, "rest", *rest, DType::kF32);
    gpu::check_shape(op, "rest", *rest, x.shape());
  } else if (residual != nullptr) {
    gpu::check_f32_or_bf16(op, "x", x);
  } else {
    gpu::check_dtype(op, "x", x, DType::kBF16);
  }
  gpu::check_f32_or_bf16(op, "weight", weight);
  gpu::check_dtype(op, "out", out, DType::kBF16);
  MLA_CHECK(weight.ndim() == 1 && x.ndim() >= 1 && x.dim(-1) == weight.dim(0),
            "{}: x {} must end in the weight's width, weight {}", op, shape_str(x.shape()), shape_str(weight.shape()));
  gpu::check_shape(op, "out", out, x.shape());
  MLA_CHECK(eps > 0.0f, "{}: eps must be positive, got {}", op, eps);
  if (residual != nullptr) {
    gpu::check_dtype(op, "residual", *residual, DType::kBF16);
    gpu::check_shape(op, "residual", *residual, x.shape());
    MLA_CHECK(residual->raw() != x.raw() && residual->raw() != out.raw(), "{}: residual must not alias x or out", op);
  }
  const int64_t d = weight.dim(0);
  const bool vec8 = d % 8 == 0 && gpu::aligned16(x) && gpu::aligned16(weight) && gpu::aligned16(out) &&
                    (residual == nullptr || gpu::aligned16(*residual)) && (rest == nullptr || gpu::aligned16(*rest));
  const gpu::NormFp8Out fused = gpu::norm_fp8_out(op, out, quant, vec8);
  if (d == 0 || x.numel() == 0) return;

  const float* rest_ptr = rest != nullptr ? gpu::ptr<const float>(*rest) : nullptr;
  __nv_bfloat16* res = residual != nullptr ? gpu::ptr<__nv_bfloat16>(*residual) : nullptr;
  const bool weight_bf16 = weight.dtype() == DType::kBF16;
  const bool prefetch = gpu::aligned16(weight) && weight.nbytes() % 16 == 0;
  if (x.dtype() == DType::kF32) {
    launch_kernel<float>({gpu::ptr<const float>(x), rest_ptr, res, weight.raw(), gpu::ptr<__nv_bfloat16>(out),
                          x.numel() / d, d, eps, weight_bf16, prefetch, fused, 0},
                         vec8, stream);
  } else {
    launch_kernel<__nv_bfloat16>({gpu::ptr<const __nv_bfloat16>(x), nullptr, res, weight.raw(),
                                  gpu::ptr<__nv_bfloat16>(out), x.numel() / d, d, eps, weight_bf16, prefetch, fused,
                                  0},
                                 vec8, stream);
  }
  gpu::quantize_unfused(quant, fused, out, stream);
}

}  // namespace

void rms_norm_cuda(const Tensor& x, const Tensor& weight, float eps, Tensor& out, cudaStream_t stream) {
  launch("rms_norm_cuda", x, nullptr, nullptr, weight, eps, out, stream);
}

void add_rms_norm_cuda(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out,
                       cudaStream_t stream) {
  launch("add_rms_norm_cuda", x, nullptr, &residual, weight, eps, out, stream);
}

void add_sum_rms_norm_cuda(const Tensor& base, const Tensor& rest, Tensor& residual, const Tensor& weight, float eps,
                           Tensor& out, cudaStream_t stream) {
  launch("add_sum_rms_norm_cuda", base, &rest, &residual, weight, eps, out, stream);
}

void rms_norm_fp8_cuda(const Tensor& x, const Tensor& weight, float eps, Tensor& out, const ActQuantParams& act,
                       Fp8Activations& out_q, cudaStream_t stream) {
  const gpu::NormFp8Request quant{act, out_q};
  launch("rms_norm_fp8_cuda", x, nullptr, nullptr, weight, eps, out, stream, &quant);
}

void add_rms_norm_fp8_cuda(const Tensor& x, Tensor& residual, const Tensor& weight, float eps, Tensor& out,
                           const ActQuantParams& act, Fp8Activations& out_q, cudaStream_t stream) {
  const gpu::NormFp8Request quant{act, out_q};
  launch("add_rms_norm_fp8_cuda", x, nullptr, &residual, weight, eps, out, stream, &quant);
}

void add_sum_rms_norm_fp8_cuda(const Tensor& base, const Tensor& rest, Tensor& residual, const Tensor& weight,
                               float eps, Tensor& out, const ActQuantParams& act, Fp8Activations& out_q,
                               cudaStream_t stream) {
  const gpu::NormFp8Request quant{act, out_q};
  launch("add_sum_rms_norm_fp8_cuda", base, &rest, &residual, weight, eps, out, stream, &quant);
}

}  // namespace mlaserve::ops
