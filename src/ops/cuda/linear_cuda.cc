// linear_cuda (ops/linear.h): y [T, N] = x [T, K] · W [N, K]ᵀ as one cuBLASLt call
// (cublaslt_gemm.h), or for a few bf16 tokens the GEMV kernel (linear_gemv.cuh). The weight is cuBLAS's transposed A operand, x its B: the "TN" layout.
#include <string_view>

#include "ops/cuda/cublaslt_gemm.h"
#include "ops/cuda/linear_gemv.h"
#include "ops/linear.h"

namespace mlaserve::ops {

void linear_cuda(const Tensor& x, const Tensor& weight, Tensor& out, cudaStream_t stream,
                 const L2Prefetches& prefetch) {
  constexpr std::string_view kOp = "linear_cuda";
  MLA_CHECK(x.device() == Device::kCUDA && weight.device() == Device::kCUDA && out.device() == Device::kCUDA,
            "{}: x, weight and out must all be on the GPU", kOp);
  MLA_CHECK(x.ndim() == 2 && weight.ndim() == 2 && x.dim(1) == weight.dim(1),
            "{}: x {} must be [T, K] and weight {} [N, K]", kOp, shape_str(x.shape()), shape_str(weight.shape()));
  const int64_t t = x.dim(0), k = x.dim(1), n = weight.dim(0);
  MLA_CHECK(out.shape() == Shape({t, n}), "{}: out is {}, expected [{}, {}]", kOp, shape_str(out.shape()), t, n);
  MLA_CHECK(x.dtype() == weight.dtype(), "{}: x is {} but weight {}: both bf16, or both f32", kOp,
            dtype_name(x.dtype()), dtype_name(weight.dtype()));
  if (t == 0 || n == 0) return;
  MLA_CHECK(k > 0, "{}: K = 0 leaves out [{}, {}] undefined", kOp, t, n);
  if (linear_gemv_applies(x, weight, out)) {  // decode batches
    return linear_gemv_cuda(x, weight, out, stream, GemvKernel::kAuto, prefetch);
  }

  cuda::GemmProblem p;
  p.m = t;
  p.n = n;
  p.k = k;
  p.ab_dtype = x.dtype();
  p.d_dtype = out.dtype();
  p.b_layout = cuda::BLayout::kNK;
  p.a = {x.raw(), k, 0};
  p.b = {weight.raw(), k, 0};
  p.d = out.raw();
  p.d_row_stride = n;
  cuda::lt_gemm(p, stream);
}

}  // namespace mlaserve::ops
