// The GEMV path of linear_cuda (ops/linear.h): argument checks, the choice between the CUDA-core
// kernel (linear_gemv.cuh, launched here) and the tensor-core one (linear_gemv_mma.cuh, launched by
// linear_gemv_mma.cu), and the launches. linear_gemv.h has the rule (choose_gemv_kernel).
#include "ops/cuda/linear_gemv.cuh"

#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/linear_gemv.h"
#include "ops/linear.h"

namespace mlaserve::ops {
namespace {

template <typename OutT>
void launch(gpu::GemvParams<OutT> p, const L2Prefetches& prefetch, cudaStream_t stream) {
  if (any_l2_prefetch(prefetch)) {
    const L2Prefetches kept = l2_prefetches_within(prefetch, static_cast<size_t>(gpu::device_l2_bytes()));
    for (size_t i = 0; i < kMaxL2Prefetches; ++i) {
      p.prefetch[i] = static_cast<const char*>(kept[i].data);
      p.prefetch_bytes[i] = static_cast<uint32_t>(kept[i].bytes);  // at most half an L2
    }
  }
  const dim3 grid(static_cast<unsigned>((int64_t{p.n} + gpu::kGemvRows - 1) / gpu::kGemvRows));
  gpu::gemv_dispatch(p.t, p.k, [&](auto kt, auto unroll) {
    gpu::launch_programmatic(gpu::linear_gemv_bf16_kernel<decltype(kt)::value, decltype(unroll)::value, OutT>, grid,
                             gpu::kGemvThreads, 0, stream, p);
  });
}

}  // namespace

bool linear_gemv_applies(const Tensor& x, const Tensor& weight, const Tensor& out) {
  return x.dtype() == DType::kBF16 && weight.dtype() == DType::kBF16 &&
         (out.dtype() == DType::kBF16 || out.dtype() == DType::kF32) && x.ndim() == 2 && weight.ndim() == 2 &&
         x.dim(0) >= 1 && x.dim(0) <= gpu::kGemvMaxTokens && x.dim(1) % 8 == 0 && x.dim(1) < (int64_t{1} << 31) &&
         weight.dim(0) < (int64_t{1} << 31) && gpu::aligned16(x) && gpu::aligned16(weight);
}

const char* gemv_kernel_name(GemvKernel kernel) {
  switch (kernel) {
    case GemvKernel::kAuto: return "auto";
    case GemvKernel::kCudaCore: return "cuda_core";
    case GemvKernel::kTensorCore: return "tensor_core";
  }
  return "?";
}

void linear_gemv_cuda(const Tensor& x, const Tensor& weight, Tensor& out, cudaStream_t stream) {
  linear_gemv_cuda(x, weight, out, stream, GemvKernel::kAuto);
}

void linear_gemv_cuda(const Tensor& x, const Tensor& weight, Tensor& out, cudaStream_t stream, GemvKernel kernel,
                      const L2Prefetches& prefetch) {
  constexpr std::string_view kOp = "linear_gemv_cuda";
  gpu::check_dtype(kOp, "x", x, DType::kBF16);
  gpu::check_dtype(kOp, "weight", weight, DType::kBF16);
  gpu::check_f32_or_bf16(kOp, "out", out);
  MLA_CHECK(x.ndim() == 2 && weight.ndim() == 2 && x.dim(1) == weight.dim(1),
            "{}: x {} must be [T, K] and weight {} [N, K]", kOp, shape_str(x.shape()), shape_str(weight.shape()));
  const int64_t t = x.dim(0), k = x.dim(1), n = weight.dim(0);
  gpu::check_shape(kOp, "out", out, {t, n});
  MLA_CHECK(linear_gemv_applies(x, weight, out),
            "{}: needs 1 <= T = {} <= {}, K = {} a multiple of 8 and 16-byte aligned x and weight", kOp, t,
            gpu::kGemvMaxTokens, k);
  if (kernel == GemvKernel::kAuto) kernel = choose_gemv_kernel(t, k);
  if (kernel == GemvKernel::kTensorCore) {
    MLA_CHECK(linear_gemv_mma_fits(t, k), "{}: the tensor-core GEMV does not take T = {}, K = {} (shared memory)",
              kOp, t, k);
    return run_linear_gemv_mma({x.raw(), weight.raw(), out.raw(), out.dtype() == DType::kF32}, t, n, k, stream);
  }
  if (n == 0) return;
  if (out.dtype() == DType::kBF16) {
    launch(gpu::GemvParams<__nv_bfloat16>{gpu::ptr<const __nv_bfloat16>(x), gpu::ptr<const __nv_bfloat16>(weight),
                                          gpu::ptr<__nv_bfloat16>(out), static_cast<int32_t>(t),
                                          static_cast<int32_t>(n), static_cast<int32_t>(k)},
           prefetch, stream);
  } else {
    launch(gpu::GemvParams<float>{gpu::ptr<const __nv_bfloat16>(x), gpu::ptr<const __nv_bfloat16>(weight),
                                  gpu::ptr<float>(out), static_cast<int32_t>(t), static_cast<int32_t>(n),
                                  static_cast<int32_t>(k)},
           prefetch, stream);
  }
}

}  // namespace mlaserve::ops
