// Host-side entry points of the block-FP8 GEMVs, internal to src/ops/cuda (and their benchmark and
// test): the CUDA-core one (linear_fp8_gemv.cuh, T <= 4) and the tensor-core one
// (linear_fp8_gemv_mma.cuh, T <= 8). linear_fp8_cuda.cc calls them when linear_fp8_heuristics.h
// picks them or the caller forces them.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/cuda/gemv_mma_config.h"
#include "ops/fp8_quant.h"

namespace mlaserve::ops::sm90_fp8 {

struct Fp8GemvOperands {
  const void* x;          // [T, K]: bf16 when quantize, else e4m3 with x_scales [T, G] (the tensor-core
                          // GEMV: as its Fp8GemvInput says)
  const float* x_scales;  // [T, G] (nullptr when quantize)
  const void* w_q;        // [N, K] e4m3
  const float* w_scales;  // [ceil(N/128), G]
  void* out;              // [T, N] bf16, or f32 when out_f32
  bool out_f32 = false;
};

// Whether the GEMV takes T tokens and K channels (1 <= T <= 4, K a multiple of 16), and the
// 16-byte alignment its vector loads need (x, w_q; checked by the caller for tensors).
bool fp8_gemv_fits(int64_t t, int64_t k);

// out = the W8A8 product of x (quantised here with `act` when `quantize`) and w_q. Shapes are
// checked by the caller (linear_fp8_cuda.cc); fits(t, k) must hold.
void run_fp8_gemv(const Fp8GemvOperands& o, int64_t t, int64_t n, int64_t k, bool quantize,
                  const ActQuantParams& act, cudaStream_t stream);

// The tensor-core GEMV's launch shape when the caller names none (linear_fp8_heuristics.h says
// why), and the shapes fp8_gemm_bench times and test_linear_fp8_cuda checks.
inline constexpr gpu::GemvMmaConfig kFp8GemvMmaDefault{2, 4, 0};
inline constexpr gpu::GemvMmaConfig kFp8GemvMmaConfigs[] = {{1, 4, 0}, {2, 4, 0}, {3, 2, 0}, {1, 8, 0}, {2, 2, 0}};

// What the tensor-core GEMV reads as its activations x (Fp8GemvOperands::x):
//   kCodes   e4m3 [T, K] with x_scales [T, G]
//   kBf16    bf16 [T, K], quantised inside with `act`
//   kSwiGlu  an MLP's gate_up, bf16 [T, 2K] (gate [0, K), up [K, 2K), ops/silu_mul.h), whose
//            silu(gate)·up is quantised inside with `act`: the down projection's input, the
//            codes and scales silu_mul_quantize_fp8_cuda writes (ops/fp8_quant.h)
enum class Fp8GemvInput : uint8_t { kCodes, kBf16, kSwiGlu };

// Whether the tensor-core GEMV takes T tokens and K channels: 1 <= T <= 8, K a multiple of 16
// whose T staged activation rows fit in shared memory (K <= ~25k at T = 8: every DeepSeek
// projection; with kSwiGlu the T bf16 gate_up rows are staged too). It needs the same 16-byte
// alignment of x and w_q as the CUDA-core GEMV.
bool fp8_gemv_mma_fits(int64_t t, int64_t k, Fp8GemvInput input = Fp8GemvInput::kCodes);

// The same product as run_fp8_gemv on the tensor cores (linear_fp8_gemv_mma.cuh); `config` is the
// launch shape. fp8_gemv_mma_fits(t, k, input) must hold.
void run_fp8_gemv_mma(const Fp8GemvOperands& o, int64_t t, int64_t n, int64_t k, Fp8GemvInput input,
                      const ActQuantParams& act, cudaStream_t stream,
                      const gpu::GemvMmaConfig& config = kFp8GemvMmaDefault);

}  // namespace mlaserve::ops::sm90_fp8
