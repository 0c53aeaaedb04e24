// Host-side entry point of the block-FP8 GEMV (linear_fp8_gemv.cuh), internal to src/ops/cuda (and
// its benchmark and test): linear_fp8_cuda.cc calls it when linear_fp8_heuristics.h picks it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/fp8_quant.h"

namespace mlaserve::ops::sm90_fp8 {

struct Fp8GemvOperands {
  const void* x;          // [T, K]: bf16 when quantize, else e4m3 with x_scales [T, G]
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

}  // namespace mlaserve::ops::sm90_fp8
