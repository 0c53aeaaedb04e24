// run_fp8_one_group (linear_fp8_one_group.h): a dense FP8 product as one group of the grouped
// MoE FP8 GEMM. The grouped GEMM reads its expert offsets on the device only; a one-thread kernel
// writes {0, T} into a two-int buffer from the stream-ordered caching allocator before it.
#include "ops/cuda/linear_fp8_one_group.h"

#include <cstdint>

#include "core/cuda_check.h"
#include "ops/moe_experts.h"

namespace mlaserve::ops {
namespace {

__global__ void one_group_offsets_kernel(int32_t* offsets, int32_t rows) {
  offsets[0] = 0;
  offsets[1] = rows;
}

}  // namespace

void run_fp8_one_group(const Tensor& x_q, const Tensor& x_scales, const Tensor& w_q, const Tensor& w_scale_inv,
                       Tensor& out, cudaStream_t stream) {
  const int64_t t = x_q.dim(0), n = w_q.dim(0), k = w_q.dim(1);
  MLA_CHECK(t < (int64_t{1} << 31), "run_fp8_one_group: {} rows past int32", t);
  Tensor offsets = Tensor::empty({2}, DType::kI32, Device::kCUDA);  // [E + 1], E = 1
  one_group_offsets_kernel<<<1, 1, 0, stream>>>(offsets.data<int32_t>(), static_cast<int32_t>(t));
  MLA_CUDA_CHECK_LAUNCH();
  // The weight and its scales as one expert's: [1, N, K] e4m3, [1, N/128, K/128] f32 (views).
  const Tensor b_q = Tensor::view_of(w_q.raw(), {1, n, k}, DType::kF8E4M3, Device::kCUDA, nullptr);
  const Tensor b_scales = Tensor::view_of(w_scale_inv.raw(), {1, n / 128, k / 128}, DType::kF32,
                                          Device::kCUDA, nullptr);
  moe_grouped_gemm_fp8_cuda(x_q, x_scales, offsets, b_q, b_scales, /*swiglu=*/false, out, stream);
}

}  // namespace mlaserve::ops
