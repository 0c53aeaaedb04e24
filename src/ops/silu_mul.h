// SwiGLU activation (MODEL_SPEC §2, §5.3): silu(gate) ⊙ up, with silu(z) = z · σ(z).
//
// Two layouts of the same op:
//   fused:     gate_up [T, 2·I] f32, gate in columns [0, I), up in [I, 2I) — the output of
//              one GEMM against the row-concatenated [gate_proj; up_proj] weights
//   separate:  gate [T, I] f32 and up [T, I] f32
//   out        [T, I] f32, caller-allocated; out[t, i] = silu(gate[t, i]) · up[t, i], in fp32
#pragma once

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

void silu_mul_cpu(const Tensor& gate_up, Tensor& out);

void silu_mul_cpu(const Tensor& gate, const Tensor& up, Tensor& out);

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void silu_mul(const Tensor& gate_up, Tensor& out, Stream stream = {});
void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/silu_mul.cu ----------------------------------------------------------
// The same two layouts with gate_up / gate / up / out bf16 on the GPU; silu and the product in
// fp32, out rounded once to bf16. Asynchronous on stream.
void silu_mul_cuda(const Tensor& gate_up, Tensor& out, cudaStream_t stream);
void silu_mul_cuda(const Tensor& gate, const Tensor& up, Tensor& out, cudaStream_t stream);

// The fused layout over the rows [offsets[0], offsets[E]) only: expert_offsets [E + 1] i32 on the
// GPU, read on the device (clamped to [0, T]); the other rows of out are not written. The SwiGLU
// step of the MoE experts' split gate_up (moe_grouped_gemm_cuda, ops/moe_experts.h), whose row
// range (a rank's share of the experts) lives on the device.
void silu_mul_rows_cuda(const Tensor& gate_up, const Tensor& expert_offsets, Tensor& out, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
