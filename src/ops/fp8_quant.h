// Dynamic FP8 activation quantisation (MODEL_SPEC §6.3): per token and per group of 128
// contiguous channels, the activation side of DeepSeek's W8A8 GEMM (linear_fp8.h).
//
//   x       [T, K]               f32
//   x_q     [T, K]               f8e4m3, caller-allocated
//   scales  [T, ceil(K/128)]     f32, caller-allocated (multipliers: x ≈ x_q · scale)
//
// Per (t, g): amax = max(max_{κ∈g} |x[t, κ]|, params.amax_floor); s = amax / 448, or with
// Fp8ScaleFormat::kUE8M0 (V3.1's scale_fmt) the power of two 2^ceil(log2(amax / 448));
// x_q = e4m3(x / s), round to nearest even, saturating at ±448. This is REF's act_quant
// (division, not a multiply by 1/s: the two can differ by one e4m3 step). Every K of the
// released models is a multiple of 128; a partial last group is quantised the same way.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"
#include "ops/fp8_block.h"

namespace mlaserve::ops {

enum class Fp8ScaleFormat {
  kFloat32,  // s = amax / 448
  kUE8M0,    // s rounded up to a power of two (an exponent-only scale)
};

struct ActQuantParams {
  float amax_floor = kFp8AmaxFloor;  // REF's clamp; vLLM uses ~1e-10
  Fp8ScaleFormat scale_format = Fp8ScaleFormat::kFloat32;
};

// An activation quantised as above, for a producer that quantises its own output once (a norm,
// ops/rms_norm_fp8.h) and the FP8 linears that read it (ops/linear_fp8.h).
struct Fp8Activations {
  Tensor x_q;       // [T, K] e4m3
  Tensor scales;    // [T, ceil(K/128)] f32, token-major: what every FP8 kernel reads
  Tensor scales_t;  // [ceil(K/128), T] f32, the same scales group-major (cuBLASLt's layout,
                    // Fp8ScaleLayout::kGroupMajor below), or undefined: not written

  bool defined() const { return x_q.defined(); }
};

void quantize_activations_fp8_cpu(const Tensor& x, const ActQuantParams& params, Tensor& x_q,
                                  Tensor& scales);

// The same into out: x_q and scales, then scales_t ([G, T]) when it is defined.
void quantize_activations_fp8_cpu(const Tensor& x, const ActQuantParams& params, Fp8Activations& out);

// Dispatch by device (ops/dispatch.h): x f32 on the host, bf16 on the GPU.
void quantize_activations_fp8(const Tensor& x, const ActQuantParams& params, Tensor& x_q, Tensor& scales,
                              Stream stream = {});

// SwiGLU then quantisation (the input of an FP8 down projection): gate_up [T, 2·I] (ops/silu_mul.h)
// -> out.x_q [T, I] e4m3 + out.scales [T, ceil(I/128)], and out.scales_t [ceil(I/128), T] when it
// is defined (so that the down projection's cuBLASLt path transposes nothing). The host runs
// silu_mul_cpu then quantize_activations_fp8_cpu; the GPU fuses them into one pass
// (silu_mul_quantize_fp8_cuda).
void silu_mul_quantize_fp8(const Tensor& gate_up, const ActQuantParams& params, Fp8Activations& out,
                           Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/fp8_quant.cu ---------------------------------------------------------
//
// Where the activation scales go: kTokenMajor [T, ceil(K/128)] (what every op here reads), or
// kGroupMajor [ceil(K/128), T], the layout cuBLASLt's VEC128 scales take (ops/cuda/cublaslt_gemm.h),
// which saves the FP8 linear's transpose pass on its cuBLASLt path.
enum class Fp8ScaleLayout : uint8_t { kTokenMajor, kGroupMajor };

// x [T, K] bf16 on the GPU; x_q and scales as above (scales [ceil(K/128), T] with kGroupMajor),
// on the GPU. Bit-identical to quantize_activations_fp8_cpu on the same (bf16-valued) inputs:
// IEEE division for the scale and the quotients, the hardware's RNE saturating e4m3 conversion.
// Asynchronous on stream.
void quantize_activations_fp8_cuda(const Tensor& x, const ActQuantParams& params, Tensor& x_q, Tensor& scales,
                                   cudaStream_t stream, Fp8ScaleLayout layout = Fp8ScaleLayout::kTokenMajor);

// The same into out: x_q and scales, and scales_t ([G, T]) when it is defined, in one pass.
void quantize_activations_fp8_cuda(const Tensor& x, const ActQuantParams& params, Fp8Activations& out,
                                   cudaStream_t stream);

// SwiGLU fused with the quantisation (one pass instead of silu_mul_cuda's bf16 write and a
// quantisation pass that reads it back): gate_up [T, 2·I] bf16 (gate columns [0, I), up
// [I, 2I), ops/silu_mul.h) -> x_q [T, I] e4m3, scales [T, ceil(I/128)]. The SwiGLU value stays
// fp32 (no bf16 rounding) before it is quantised, so the reference is silu_mul_cpu followed by
// quantize_activations_fp8_cpu; the two differ only where expf and std::exp round differently and
// the quotient lies on an e4m3 rounding boundary (one e4m3 step, rarely). out as
// silu_mul_quantize_fp8's (scales_t written in the same pass when defined).
void silu_mul_quantize_fp8_cuda(const Tensor& gate_up, const ActQuantParams& params, Fp8Activations& out,
                                cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
