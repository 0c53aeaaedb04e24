// The two bf16 GEMVs behind linear_gemv_cuda (ops/linear.h), internal to src/ops/cuda (and their
// tests and benchmark): the CUDA-core one (linear_gemv.cuh, 1-8 tokens) and the tensor-core one
// (linear_gemv_mma.cuh, 1-8 tokens, K limited by shared memory). choose_gemv_kernel is the rule
// that picks one; the overload of linear_gemv_cuda below lets tests and decode_gemv_bench force
// either.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/tensor.h"
#include "ops/l2_prefetch.h"

namespace mlaserve::ops {

enum class GemvKernel : uint8_t {
  kAuto,        // choose_gemv_kernel
  kCudaCore,    // linear_gemv.cuh: fp32 FMAs, the summation order gemv_kernel_order.h reproduces
  kTensorCore,  // linear_gemv_mma.cuh: mma.sync m16n8k16, fails unless linear_gemv_mma_fits
};

const char* gemv_kernel_name(GemvKernel kernel);

// Whether the tensor-core GEMV takes T tokens and K channels: 1 <= T <= 8, K a multiple of 8 whose
// T staged rows of x fit in shared memory (T · (2K + 64) bytes <= ~223 KB: K <= ~14k at 8 tokens,
// every DeepSeek projection but V3's o_proj (K = 16384) at 7-8 tokens).
bool linear_gemv_mma_fits(int64_t t, int64_t k);

// Which GEMV runs T tokens over K channels: the tensor cores from 4 to 8 tokens wherever they fit,
// the CUDA cores below. On the H200 (decode_gemv_bench, bench/NOTES-engine.md 2026-11-29) the
// CUDA-core kernel is compute-bound from 4 tokens (V2-Lite q_proj 4.1 / 4.5 / 6.1 / 9.8 us at
// 1 / 2 / 4 / 8 tokens, shared gate_up 7.0 / 7.6 / 10.0 / 17.4) where the tensor-core one keeps
// its weight pass (4.1 / 4.2 / 4.5 / 5.1 and 6.7 / 6.9 / 7.3 / 8.0); at two tokens they tie per
// kernel (kv_a 1.6 vs 2.1, shared down 5.1 vs 5.4, q_proj 4.5 vs 4.2) and the batch-2 step was 3-5%
// slower on the tensor cores (2.94 -> 3.06 ms).
inline GemvKernel choose_gemv_kernel(int64_t t, int64_t k) {
  return t >= 4 && linear_gemv_mma_fits(t, k) ? GemvKernel::kTensorCore : GemvKernel::kCudaCore;
}

// linear_gemv_cuda (ops/linear.h) with the kernel named: the same contract and checks, plus
// linear_gemv_mma_fits for kTensorCore. The CUDA-core kernel's CTAs pull l2_prefetches_within
// (`prefetch`, the device's L2) into L2 before their wait (linear_gemv.cuh); the tensor-core one
// ignores it.
void linear_gemv_cuda(const Tensor& x, const Tensor& weight, Tensor& out, cudaStream_t stream, GemvKernel kernel,
                      const L2Prefetches& prefetch = {});

// The tensor-core GEMV's launch (linear_gemv_mma.cu): bf16 x [t, k] and w [n, k] (16-byte aligned),
// out [t, n] bf16 or f32 (out_f32). The caller has checked shapes and linear_gemv_mma_fits(t, k).
struct GemvMmaOperands {
  const void* x;    // [T, K] bf16
  const void* w;    // [N, K] bf16
  void* out;        // [T, N] bf16, or f32 when out_f32
  bool out_f32 = false;
};
void run_linear_gemv_mma(const GemvMmaOperands& o, int64_t t, int64_t n, int64_t k, cudaStream_t stream);

}  // namespace mlaserve::ops
