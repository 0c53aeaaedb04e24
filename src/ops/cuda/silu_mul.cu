// silu_mul on the GPU (contract: ops/silu_mul.h), bf16 activations, both layouts.
//
// Design: elementwise and memory-bound. One thread per vector of 8 outputs: it reads 16 bytes of
// gate and 16 of up, computes silu(g) · u = g / (1 + e^-g) · u in fp32 (expf, not the fast
// intrinsic) and writes 16 bytes, rounded once to bf16. The fused layout is the separate one with
// gate and up interleaved by rows: gate row t at gate_up + t·2I, up row t at gate_up + t·2I + I,
// so one kernel serves both through a row stride. Blocks tile a row (blockIdx.x) and walk the
// rows (blockIdx.y, grid-stride), so no division per element. Widths or bases that are not
// multiples of 8 elements take the one-element path. silu_mul_rows_cuda bounds the rows by two
// offsets that it reads on the device (the MoE experts' row range, which the host never sees).
//
// Launched with programmatic dependent launch (pdl.cuh): a CTA waits for the kernel before it
// (the gate/up projection) before its first load and then lets the next kernel launch.
#include <cuda_bf16.h>

#include <algorithm>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/vec.cuh"
#include "ops/silu_mul.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "silu_mul_cuda";
constexpr int kThreads = 256;

struct SiluMulParams {
  const __nv_bfloat16* gate;  // row t at gate + t * stride, I channels
  const __nv_bfloat16* up;    // row t at up + t * stride, I channels
  __nv_bfloat16* out;         // [T, I]
  int64_t rows;               // T
  int64_t width;              // I
  int64_t stride;             // elements between rows of gate and of up: 2I fused, I separate
  const int32_t* row_begin;   // null: rows [0, T); else rows [*row_begin, *row_end) (device
  const int32_t* row_end;     // memory, clamped to [0, T])
};

// grid (ceil(I / kVec / kThreads), min(T, 65535)), block kThreads; launched with
// launch_programmatic.
template <int kVec>
__global__ void __launch_bounds__(kThreads) silu_mul_kernel(SiluMulParams p) {
  gpu::grid_dependency_wait();
  gpu::launch_dependents();
  const int64_t vectors = p.width / kVec;
  int64_t first = 0, end = p.rows;
  if (p.row_begin != nullptr) {
    first = min(max(int64_t{*p.row_begin}, int64_t{0}), p.rows);
    end = max(first, min(max(int64_t{*p.row_end}, int64_t{0}), p.rows));
  }
  for (int64_t r = first + blockIdx.y; r < end; r += gridDim.y) {
    for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < vectors;
         c += int64_t{gridDim.x} * blockDim.x) {
      float g[kVec], u[kVec];
      gpu::load_vec<kVec>(p.gate + r * p.stride + c * kVec, g);
      gpu::load_vec<kVec>(p.up + r * p.stride + c * kVec, u);
#pragma unroll
      for (int i = 0; i < kVec; ++i) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
      gpu::store_vec<kVec>(p.out + r * p.width + c * kVec, g);
    }
  }
}

void launch(const SiluMulParams& p, bool vec8, cudaStream_t stream) {
  if (p.rows == 0 || p.width == 0) return;
  const int64_t vectors = vec8 ? p.width / 8 : p.width;
  const dim3 grid(static_cast<unsigned>((vectors + kThreads - 1) / kThreads),
                  static_cast<unsigned>(std::min<int64_t>(p.rows, 65535)));
  if (vec8) {
    gpu::launch_programmatic(silu_mul_kernel<8>, grid, kThreads, 0, stream, p);
  } else {
    gpu::launch_programmatic(silu_mul_kernel<1>, grid, kThreads, 0, stream, p);
  }
}

// The fused layout's checks and parameters (rows unbounded): gate_up [T, 2·I], out [T, I].
SiluMulParams fused_params(const Tensor& gate_up, Tensor& out) {
  gpu::check_dtype(kOp, "gate_up", gate_up, DType::kBF16);
  gpu::check_dtype(kOp, "out", out, DType::kBF16);
  MLA_CHECK(gate_up.ndim() == 2 && gate_up.dim(1) % 2 == 0, "{}: gate_up {} must be [T, 2·I]", kOp,
            shape_str(gate_up.shape()));
  const int64_t t = gate_up.dim(0), width = gate_up.dim(1) / 2;
  gpu::check_shape(kOp, "out", out, {t, width});
  const auto* base = gpu::ptr<const __nv_bfloat16>(gate_up);
  return SiluMulParams{base, base + width, gpu::ptr<__nv_bfloat16>(out), t, width, 2 * width, nullptr, nullptr};
}

bool fused_vec8(const SiluMulParams& p, const Tensor& gate_up, const Tensor& out) {
  return p.width % 8 == 0 && gpu::aligned16(gate_up) && gpu::aligned16(out);
}

}  // namespace

void silu_mul_cuda(const Tensor& gate_up, Tensor& out, cudaStream_t stream) {
  const SiluMulParams p = fused_params(gate_up, out);
  launch(p, fused_vec8(p, gate_up, out), stream);
}

void silu_mul_rows_cuda(const Tensor& gate_up, const Tensor& expert_offsets, Tensor& out, cudaStream_t stream) {
  gpu::check_dtype(kOp, "expert_offsets", expert_offsets, DType::kI32);
  MLA_CHECK(expert_offsets.ndim() == 1 && expert_offsets.dim(0) >= 1, "{}: expert_offsets {} must be [E + 1]", kOp,
            shape_str(expert_offsets.shape()));
  SiluMulParams p = fused_params(gate_up, out);
  p.row_begin = gpu::ptr<const int32_t>(expert_offsets);
  p.row_end = p.row_begin + expert_offsets.dim(0) - 1;
  launch(p, fused_vec8(p, gate_up, out), stream);
}

void silu_mul_cuda(const Tensor& gate, const Tensor& up, Tensor& out, cudaStream_t stream) {
  gpu::check_dtype(kOp, "gate", gate, DType::kBF16);
  gpu::check_dtype(kOp, "up", up, DType::kBF16);
  gpu::check_dtype(kOp, "out", out, DType::kBF16);
  MLA_CHECK(gate.ndim() == 2, "{}: gate {} must be [T, I]", kOp, shape_str(gate.shape()));
  gpu::check_shape(kOp, "up", up, gate.shape());
  gpu::check_shape(kOp, "out", out, gate.shape());
  const int64_t width = gate.dim(1);
  const SiluMulParams p{gpu::ptr<const __nv_bfloat16>(gate), gpu::ptr<const __nv_bfloat16>(up),
                        gpu::ptr<__nv_bfloat16>(out), gate.dim(0), width, width, nullptr, nullptr};
  launch(p, width % 8 == 0 && gpu::aligned16(gate) && gpu::aligned16(up) && gpu::aligned16(out), stream);
}

}  // namespace mlaserve::ops
