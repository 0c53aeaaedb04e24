// linear_fp8_w8a8_cuda, linear_fp8_cuda and silu_mul_linear_fp8_cuda (ops/linear_fp8.h): argument
// checks, the kernel choice (linear_fp8_heuristics.h), and the cuBLASLt path, whose activation
// scales go into a per-stream workspace in cuBLASLt's VEC128 layout [ceil(K/128), T]: transposed
// there from quantised x, or written so by the quantiser when linear_fp8_cuda quantises bf16 x
// itself; or they come so from the caller (Fp8Activations::scales_t: a norm's FP8 form, or the
// SwiGLU quantiser's, wrote them).
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string_view>
#include <utility>

#include "core/cuda_check.h"
#include "core/memory.h"
#include "ops/cuda/cublaslt_gemm.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/linear_fp8_gemv.h"
#include "ops/cuda/linear_fp8_heuristics.h"
#include "ops/cuda/linear_fp8_one_group.h"
#include "ops/cuda/linear_fp8_sm90.h"
#include "ops/fp8_block.h"
#include "ops/fp8_quant.h"
#include "ops/linear_fp8.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "linear_fp8_w8a8_cuda";
constexpr std::string_view kOpBf16 = "linear_fp8_cuda";
constexpr int64_t kScaleWorkspaceFloats = int64_t{1} << 20;  // 4 MiB: [G, T chunk] f32

void check_gpu(const Tensor& t, std::string_view name, DType dtype, const Shape& shape,
               std::string_view op = kOp) {
  MLA_CHECK(t.device() == Device::kCUDA, "{}: {} must be on the GPU", op, name);
  MLA_CHECK(t.dtype() == dtype, "{}: {} must be {}, got {}", op, name, dtype_name(dtype), dtype_name(t.dtype()));
  MLA_CHECK(t.shape() == shape, "{}: {} must be {}, got {}", op, name, shape_str(shape), shape_str(t.shape()));
}

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0; }

// The GPU as the swap-AB plan may count on it for a GEMM placed so; asked once a call.
const sm90_fp8::SwapAbGpu& gpu_for(GridPlacement placement) {
  return sm90_fp8::swap_ab_gpu(placement == GridPlacement::kBeside);
}

// The kernel that runs: kAuto's choice, or the forced one where it takes the shape.
// x_quantized: x arrives as e4m3 + scales (linear_fp8_w8a8_cuda), not bf16.
sm90_fp8::Fp8GemmPath choose_path(int64_t t, int64_t n, int64_t k, Fp8GemmKernel kernel, const sm90_fp8::SwapAbGpu& gpu,
                                  bool gemv_aligned, bool x_quantized, bool bf16_out, std::string_view op) {
  switch (kernel) {
    case Fp8GemmKernel::kAuto: {
      if (gemv_aligned && sm90_fp8::use_gemv_mma(t, k, x_quantized) && sm90_fp8::fp8_gemv_mma_fits(t, k)) {
        return sm90_fp8::Fp8GemmPath::kGemvMma;
      }
      const sm90_fp8::Fp8GemmPath path = sm90_fp8::choose_fp8_gemm(t, n, k, gpu, bf16_out);
      return path != sm90_fp8::Fp8GemmPath::kGemv || gemv_aligned ? path : sm90_fp8::Fp8GemmPath::kSwapAB;
    }
    case Fp8GemmKernel::kSm90SwapAB: return sm90_fp8::Fp8GemmPath::kSwapAB;
    case Fp8GemmKernel::kCublasLt:
      if (sm90_fp8::cublaslt_fp8_fits(t, n, k)) return sm90_fp8::Fp8GemmPath::kCublasLt;
      MLA_CHECK(sm90_fp8::cublaslt_split_fits(t, n, k),
                "{}: cuBLASLt's block-scaled FP8 needs N a multiple of 8, ceil(K/128) of 4, and T a multiple of 4 "
                "or past 4 (its rows in fours, a GEMV on the rest); got T {} N {} K {}",
                op, t, n, k);
      return sm90_fp8::Fp8GemmPath::kCublasLtSplit;
    case Fp8GemmKernel::kGemv:
      MLA_CHECK(sm90_fp8::fp8_gemv_fits(t, k) && gemv_aligned,
                "{}: the FP8 GEMV needs 1 <= T <= {} (got {}), K a multiple of 16 (got {}) and 16-byte aligned "
                "operands",
                op, sm90_fp8::kGemvMaxTokens, t, k);
      return sm90_fp8::Fp8GemmPath::kGemv;
    case Fp8GemmKernel::kGemvMma:
      MLA_CHECK(sm90_fp8::fp8_gemv_mma_fits(t, k) && gemv_aligned,
                "{}: the tensor-core FP8 GEMV needs 1 <= T <= 8 (got {}), K a multiple of 16 (got {}) whose T rows "
                "fit in shared memory, and 16-byte aligned operands",
                op, t, k);
      return sm90_fp8::Fp8GemmPath::kGemvMma;
    case Fp8GemmKernel::kOneGroup:
      MLA_CHECK(sm90_fp8::one_group_fits(n, k) && bf16_out,
                "{}: the one-group grouped GEMM needs N and K multiples of 128 and bf16 out; got N {} K {}", op, n, k);
      return sm90_fp8::Fp8GemmPath::kOneGroup;
  }
  return sm90_fp8::Fp8GemmPath::kSwapAB;
}

// The transposed activation scales of the cuBLASLt path: one buffer per (thread, device,
// stream), allocated by the first call outside a graph capture.
float* scale_workspace(cudaStream_t stream) {
  int device = 0;
  MLA_CUDA_CHECK(cudaGetDevice(&device));
  thread_local std::map<std::pair<int, cudaStream_t>, std::unique_ptr<Buffer>> workspaces;
  std::unique_ptr<Buffer>& ws = workspaces[{device, stream}];
  if (!ws) {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    MLA_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
    MLA_CHECK(status == cudaStreamCaptureStatusNone,
              "{}: the first cuBLASLt-path call on this thread/device/stream ran during a CUDA graph capture and "
              "would allocate its scale workspace; run the step once before capturing it",
              kOp);
    ws = std::make_unique<Buffer>(Device::kCUDA, kScaleWorkspaceFloats * sizeof(float));
  }
  return static_cast<float*>(ws->data());
}

// Tokens of one cuBLASLt call: as many as the workspace holds scales of (7281 at K = 18432).
int64_t cublaslt_chunk(int64_t t, int64_t k) { return std::min(t, kScaleWorkspaceFloats / fp8_num_blocks(k) / 4 * 4); }

// out rows [r0, r0 + rows) = x_q rows [r0, r0 + rows) · w_qᵀ through cuBLASLt, those rows' scales
// at scales_t in its layout [G, rows].
void cublaslt_rows(const Tensor& x_q, const float* scales_t, const Tensor& w_q, const Tensor& w_scale_inv, int64_t r0,
                   int64_t rows, Tensor& out, cudaStream_t stream) {
  const int64_t k = x_q.dim(1), n = w_q.dim(0);
  const int64_t out_elem = static_cast<int64_t>(dtype_size(out.dtype()));
  cuda::GemmProblem p;
  p.m = rows;
  p.n = n;
  p.k = k;
  p.ab_dtype = DType::kF8E4M3;
  p.d_dtype = out.dtype();
  p.b_layout = cuda::BLayout::kNK;
  p.a = {static_cast<const uint8_t*>(x_q.raw()) + r0 * k, k, 0};
  p.b = {w_q.raw(), k, 0};
  p.d = static_cast<uint8_t*>(out.raw()) + r0 * n * out_elem;
  p.d_row_stride = n;
  p.fp8_scales = {scales_t, static_cast<const float*>(w_scale_inv.raw())};
  cuda::lt_gemm(p, stream);
}

// cuBLASLt: all T in one call on the caller's group-major scales (scales_t, or null), else in
// chunks of T whose transposed scales fit the workspace.
void run_cublaslt(const Tensor& x_q, const Tensor& x_scales, const float* scales_t_in, const Tensor& w_q,
                  const Tensor& w_scale_inv, Tensor& out, cudaStream_t stream) {
  const int64_t t = x_q.dim(0), g = fp8_num_blocks(x_q.dim(1)), chunk = cublaslt_chunk(t, x_q.dim(1));
  if (scales_t_in != nullptr) return cublaslt_rows(x_q, scales_t_in, w_q, w_scale_inv, 0, t, out, stream);
  float* scales_t = scale_workspace(stream);
  const auto* xs = static_cast<const float*>(x_scales.raw());
  for (int64_t r0 = 0; r0 < t; r0 += chunk) {
    const int64_t rows = std::min(chunk, t - r0);
    sm90_fp8::transpose_f32(xs + r0 * g, scales_t, rows, g, stream);  // [rows, G] -> [G, rows]
    cublaslt_rows(x_q, scales_t, w_q, w_scale_inv, r0, rows, out, stream);
  }
}

// linear_fp8_w8a8_cuda, with the caller's group-major scales (x_scales_t [G, T]) or without
// (undefined). kCublasLtSplit transposes the first T & ~3 rows' token-major scales for cuBLASLt (the
// caller's [G, T] has rows of T floats, not T & ~3) and runs the rest through this function again.
void w8a8(const Tensor& x_q, const Tensor& x_scales, const Tensor& x_scales_t, const Tensor& w_q,
          const Tensor& w_scale_inv, Tensor& out, cudaStream_t stream, Fp8GemmKernel kernel,
          const sm90_fp8::SwapAbGpu& gpu) {
  MLA_CHECK(x_q.ndim() == 2 && w_q.ndim() == 2, "{}: x_q {} must be [T, K] and w_q {} [N, K]", kOp,
            shape_str(x_q.shape()), shape_str(w_q.shape()));
  const int64_t t = x_q.dim(0), k = x_q.dim(1), n = w_q.dim(0), g = fp8_num_blocks(k);
  check_gpu(x_q, "x_q", DType::kF8E4M3, {t, k});
  check_gpu(w_q, "w_q", DType::kF8E4M3, {n, k});
  check_gpu(x_scales, "x_scales", DType::kF32, {t, g});
  if (x_scales_t.defined()) check_gpu(x_scales_t, "x_scales_t", DType::kF32, {g, t});
  check_gpu(w_scale_inv, "w_scale_inv", DType::kF32, {fp8_num_blocks(n), g});
  check_gpu(out, "out", out.dtype() == DType::kF32 ? DType::kF32 : DType::kBF16, {t, n});
  if (t == 0 || n == 0) return;
  MLA_CHECK(k > 0 && k % 16 == 0, "{}: K = {} must be a positive multiple of 16 (TMA row pitch)", kOp, k);
  MLA_CHECK(t < (int64_t{1} << 31) / 128 && n < (int64_t{1} << 31) && g < (int64_t{1} << 24),
            "{}: [{}, {}] x [{}, {}] is past the kernels' 32-bit coordinates", kOp, t, k, n, k);

  const sm90_fp8::Fp8GemmPath path = choose_path(t, n, k, kernel, gpu, aligned16(x_q) && aligned16(w_q),
                                                 /*x_quantized=*/true, out.dtype() == DType::kBF16, kOp);
  if (path == sm90_fp8::Fp8GemmPath::kCublasLt) {
    const float* scales_t = x_scales_t.defined() ? static_cast<const float*>(x_scales_t.raw()) : nullptr;
    return run_cublaslt(x_q, x_scales, scales_t, w_q, w_scale_inv, out, stream);
  }
  if (path == sm90_fp8::Fp8GemmPath::kCublasLtSplit) {  // cuBLASLt on the rows in fours, kAuto on the last 1-3
    const int64_t head = t & ~int64_t{3};
    Tensor out_head = out.slice(0, head), out_tail = out.slice(head, t);
    run_cublaslt(x_q.slice(0, head), x_scales.slice(0, head), nullptr, w_q, w_scale_inv, out_head, stream);
    return w8a8(x_q.slice(head, t), x_scales.slice(head, t), Tensor(), w_q, w_scale_inv, out_tail, stream,
                Fp8GemmKernel::kAuto, gpu);
  }
  if (path == sm90_fp8::Fp8GemmPath::kOneGroup) return run_fp8_one_group(x_q, x_scales, w_q, w_scale_inv, out, stream);
  if (path == sm90_fp8::Fp8GemmPath::kGemv) {
    return sm90_fp8::run_fp8_gemv({x_q.raw(), static_cast<const float*>(x_scales.raw()), w_q.raw(),
                                   static_cast<const float*>(w_scale_inv.raw()), out.raw(), out.dtype() == DType::kF32},
                                  t, n, k, /*quantize=*/false, ActQuantParams{}, stream);
  }
  if (path == sm90_fp8::Fp8GemmPath::kGemvMma) {
    return sm90_fp8::run_fp8_gemv_mma({x_q.raw(), static_cast<const float*>(x_scales.raw()), w_q.raw(),
                                       static_cast<const float*>(w_scale_inv.raw()), out.raw(),
                                       out.dtype() == DType::kF32},
                                      t, n, k, sm90_fp8::Fp8GemvInput::kCodes, ActQuantParams{}, stream);
  }
  sm90_fp8::run_swap_ab({x_q.raw(), static_cast<const float*>(x_scales.raw()), w_q.raw(),
                         static_cast<const float*>(w_scale_inv.raw()), out.raw(), out.dtype() == DType::kF32},
                        t, n, k, sm90_fp8::plan_swap_ab(t, n, k, gpu), stream);
}

}  // namespace

void linear_fp8_w8a8_cuda(const Tensor& x_q, const Tensor& x_scales, const Tensor& w_q, const Tensor& w_scale_inv,
                          Tensor& out, cudaStream_t stream, Fp8GemmKernel kernel) {
  w8a8(x_q, x_scales, Tensor(), w_q, w_scale_inv, out, stream, kernel, gpu_for(GridPlacement::kAlone));
}

void linear_fp8_w8a8_cuda(const Fp8Activations& x, const Tensor& w_q, const Tensor& w_scale_inv, Tensor& out,
                          cudaStream_t stream, Fp8GemmKernel kernel, GridPlacement placement) {
  w8a8(x.x_q, x.scales, x.scales_t, w_q, w_scale_inv, out, stream, kernel, gpu_for(placement));
}

void linear_fp8_cuda(const Tensor& x, const Tensor& w_q, const Tensor& w_scale_inv, const ActQuantParams& act,
                     Tensor& out, cudaStream_t stream, Fp8GemmKernel kernel, GridPlacement placement) {
  MLA_CHECK(x.ndim() == 2 && w_q.ndim() == 2, "{}: x {} must be [T, K] and w_q {} [N, K]", kOpBf16,
            shape_str(x.shape()), shape_str(w_q.shape()));
  const int64_t t = x.dim(0), k = x.dim(1), n = w_q.dim(0);
  check_gpu(x, "x", DType::kBF16, {t, k}, kOpBf16);
  if (t == 0 || n == 0) return;
  const bool gemv_aligned = aligned16(x) && aligned16(w_q);
  const sm90_fp8::SwapAbGpu& gpu = gpu_for(placement);
  const sm90_fp8::Fp8GemmPath path =
      choose_path(t, n, k, kernel, gpu, gemv_aligned, /*x_quantized=*/false, out.dtype() == DType::kBF16,
                  kOpBf16);
  const bool gemv = path == sm90_fp8::Fp8GemmPath::kGemv;
  const bool gemv_mma = path == sm90_fp8::Fp8GemmPath::kGemvMma &&
                        (kernel == Fp8GemmKernel::kGemvMma || sm90_fp8::gemv_mma_quantizes(t, k));
  check_gpu(w_q, "w_q", DType::kF8E4M3, {n, k}, kOpBf16);
  check_gpu(w_scale_inv, "w_scale_inv", DType::kF32, {fp8_num_blocks(n), fp8_num_blocks(k)}, kOpBf16);
  check_gpu(out, "out", out.dtype() == DType::kF32 ? DType::kF32 : DType::kBF16, {t, n}, kOpBf16);
  if (gemv_mma || (gemv && (kernel == Fp8GemmKernel::kGemv || sm90_fp8::gemv_quantizes(t, k)))) {
    const sm90_fp8::Fp8GemvOperands o{x.raw(), nullptr, w_q.raw(), static_cast<const float*>(w_scale_inv.raw()),
                                      out.raw(), out.dtype() == DType::kF32};
    if (gemv_mma) return sm90_fp8::run_fp8_gemv_mma(o, t, n, k, sm90_fp8::Fp8GemvInput::kBf16, act, stream);
    return sm90_fp8::run_fp8_gemv(o, t, n, k, /*quantize=*/true, act, stream);
  }
  Tensor x_q = Tensor::empty({t, k}, DType::kF8E4M3, Device::kCUDA);  // [T, K]
  if (path == sm90_fp8::Fp8GemmPath::kCublasLt && cublaslt_chunk(t, k) == t) {
    // The scales straight into cuBLASLt's layout: no transpose pass.
    Tensor scales_t =
        Tensor::view_of(scale_workspace(stream), {fp8_num_blocks(k), t}, DType::kF32, Device::kCUDA, nullptr);
    quantize_activations_fp8_cuda(x, act, x_q, scales_t, stream, Fp8ScaleLayout::kGroupMajor);  // [G, T]
    return cublaslt_rows(x_q, static_cast<const float*>(scales_t.raw()), w_q, w_scale_inv, 0, t, out, stream);
  }
  Tensor x_scales = Tensor::empty({t, fp8_num_blocks(k)}, DType::kF32, Device::kCUDA);  // [T, K/128]
  quantize_activations_fp8_cuda(x, act, x_q, x_scales, stream);
  w8a8(x_q, x_scales, Tensor(), w_q, w_scale_inv, out, stream, kernel, gpu);
}

void silu_mul_linear_fp8_cuda(const Tensor& gate_up, const Tensor& w_q, const Tensor& w_scale_inv,
                              const ActQuantParams& act, Tensor& out, cudaStream_t stream, Fp8GemmKernel kernel,
                              GridPlacement placement) {
  constexpr std::string_view kOpSwiGlu = "silu_mul_linear_fp8_cuda";
  MLA_CHECK(gate_up.ndim() == 2 && gate_up.dim(1) % 2 == 0 && w_q.ndim() == 2,
            "{}: gate_up {} must be [T, 2·K] and w_q {} [N, K]", kOpSwiGlu, shape_str(gate_up.shape()),
            shape_str(w_q.shape()));
  const int64_t t = gate_up.dim(0), k = gate_up.dim(1) / 2, n = w_q.dim(0);
  check_gpu(gate_up, "gate_up", DType::kBF16, {t, 2 * k}, kOpSwiGlu);
  check_gpu(w_q, "w_q", DType::kF8E4M3, {n, k}, kOpSwiGlu);
  check_gpu(w_scale_inv, "w_scale_inv", DType::kF32, {fp8_num_blocks(n), fp8_num_blocks(k)}, kOpSwiGlu);
  check_gpu(out, "out", out.dtype() == DType::kF32 ? DType::kF32 : DType::kBF16, {t, n}, kOpSwiGlu);
  if (t == 0 || n == 0) return;
  constexpr auto kSwiGlu = sm90_fp8::Fp8GemvInput::kSwiGlu;
  const bool fits = aligned16(gate_up) && aligned16(w_q) && sm90_fp8::fp8_gemv_mma_fits(t, k, kSwiGlu);
  const bool fused = kernel == Fp8GemmKernel::kGemvMma || (kernel == Fp8GemmKernel::kAuto && fits &&
                                                           sm90_fp8::gemv_mma_takes_swiglu(t, k));
  if (fused) {
    MLA_CHECK(fits, "{}: the tensor-core FP8 GEMV on gate_up needs 1 <= T <= 8 (got {}), K a multiple of 16 (got {}) "
              "whose T rows fit in shared memory, and 16-byte aligned operands", kOpSwiGlu, t, k);
    return sm90_fp8::run_fp8_gemv_mma({gate_up.raw(), nullptr, w_q.raw(), static_cast<const float*>(w_scale_inv.raw()),
                                       out.raw(), out.dtype() == DType::kF32},
                                      t, n, k, kSwiGlu, act, stream);
  }
  const int64_t g = fp8_num_blocks(k);
  Fp8Activations h{Tensor::empty({t, k}, DType::kF8E4M3, Device::kCUDA),  // [T, K]
                   Tensor::empty({t, g}, DType::kF32, Device::kCUDA),     // [T, K/128]
                   Tensor::empty({g, t}, DType::kF32, Device::kCUDA)};    // [K/128, T]: cuBLASLt's layout
  silu_mul_quantize_fp8_cuda(gate_up, act, h, stream);
  w8a8(h.x_q, h.scales, h.scales_t, w_q, w_scale_inv, out, stream, kernel, gpu_for(placement));
}

void transpose_fp8_act_scales_cuda(const Tensor& x_scales, Tensor& out, cudaStream_t stream) {
  constexpr std::string_view kName = "transpose_fp8_act_scales_cuda";
  MLA_CHECK(x_scales.ndim() == 2, "{}: x_scales {} must be [T, G]", kName, shape_str(x_scales.shape()));
  const int64_t t = x_scales.dim(0), g = x_scales.dim(1);
  MLA_CHECK(x_scales.device() == Device::kCUDA && out.device() == Device::kCUDA && x_scales.dtype() == DType::kF32 &&
                out.dtype() == DType::kF32 && out.shape() == Shape({g, t}),
            "{}: x_scales [T, G] and out [G, T] must be f32 GPU tensors; got {} and {}", kName,
            shape_str(x_scales.shape()), shape_str(out.shape()));
  sm90_fp8::transpose_f32(static_cast<const float*>(x_scales.raw()), static_cast<float*>(out.raw()), t, g, stream);
}

}  // namespace mlaserve::ops
