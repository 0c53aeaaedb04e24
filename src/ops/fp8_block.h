// Block-scaled FP8 weights (MODEL_SPEC §6.1, §6.2): e4m3 values with one fp32 multiplier per
// 128 x 128 block, the DeepSeek-V3 checkpoint format.
//
//   w_q        [N, K]                          f8e4m3 (float8_e4m3fn: max ±448, no infinities)
//   scale_inv  [ceil(N/128), ceil(K/128)]      f32, the `<name>_scale_inv` companion
//   real value W[r, c] = float(w_q[r, c]) · scale_inv[r / 128, c / 128]
//
// scale_inv is a multiplier despite its name: multiply, never divide. Edge blocks are partial
// (kv_a_proj_with_mqa [576, 7168] has scale_inv [5, 56]; its last row block holds 64 rows) and
// use their block's scale like any other row.
//
// dequantize_block_fp8_cpu:  w_q + scale_inv -> out [N, K] f32 or bf16 (the fp32 product,
//                            rounded once for bf16, as DeepSeek's fp8_cast_bf16 does)
// quantize_weight_block_fp8_cpu:  w [N, K] f32 or bf16 -> w_q + scale_inv, for
//                            `--quantization fp8` of BF16 checkpoints and for tests. Per block:
//                            amax = max(max|w|, 1e-4); scale_inv = amax / 448;
//                            w_q = e4m3(w · (448 / amax)), round to nearest even, saturating.
//                            (The block amax maps onto 448 exactly, as in DeepGEMM's and vLLM's
//                            per_block_cast_to_fp8; the 1e-4 floor keeps all-zero blocks finite.)
#pragma once

#include <cstdint>

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

inline constexpr int64_t kFp8BlockSize = 128;  // rows and columns per weight scale block; also
                                               // the activation group width (fp8_quant.h)
inline constexpr float kFp8AmaxFloor = 1e-4f;  // REF's clamp of a block's or group's amax

// ceil(n / 128): scale blocks along a dimension of n elements.
inline int64_t fp8_num_blocks(int64_t n) { return (n + kFp8BlockSize - 1) / kFp8BlockSize; }

void dequantize_block_fp8_cpu(const Tensor& w_q, const Tensor& scale_inv, Tensor& out);

void quantize_weight_block_fp8_cpu(const Tensor& w, Tensor& w_q, Tensor& scale_inv);

// Dispatch by device (ops/dispatch.h): w f32/bf16 on the host, bf16 on the GPU.
void quantize_weight_block_fp8(const Tensor& w, Tensor& w_q, Tensor& scale_inv, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/fp8_block.cu ---------------------------------------------------------
// w [N, K] bf16, w_q [N, K] e4m3, scale_inv [ceil(N/128), ceil(K/128)] f32, all on the GPU;
// bit-identical to quantize_weight_block_fp8_cpu on the same weights. Asynchronous on stream.
void quantize_weight_block_fp8_cuda(const Tensor& w, Tensor& w_q, Tensor& scale_inv, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
