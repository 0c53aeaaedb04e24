// quantize_weight_block_fp8_cuda (contract: ops/fp8_block.h): BF16 weights -> e4m3 + one scale per
// 128 x 128 block, for `--quantization fp8` and FP8 dummy weights at load time.
//
// Design: one CTA of 256 threads per block; a 128 x 128 bf16 block is 32 KB, read twice (amax,
// then the codes: the second pass hits L2). Threads walk the block row by row (consecutive
// threads, consecutive columns: coalesced). The factor 448 / amax and each product use IEEE
// fp32 operations (__fdiv_rn, __fmul_rn: no contraction), and the conversion is the hardware's
// round-to-nearest-even with saturation, so codes and scales equal quantize_weight_block_fp8_cpu's
// bit for bit. Partial edge blocks (kv_a_proj_with_mqa's last 64 rows) skip the missing elements.
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/fp8_block.h"

namespace mlaserve::ops {
namespace {

constexpr int kThreads = 256;

struct WeightQuantParams {
  const __nv_bfloat16* w;  // [N, K]
  __nv_fp8_e4m3* w_q;      // [N, K]
  float* scale_inv;        // [ceil(N/128), ceil(K/128)]
  int64_t n, k;
};

// grid (ceil(K/128), ceil(N/128)), block kThreads.
__global__ void __launch_bounds__(kThreads) quantize_weight_block_fp8_kernel(WeightQuantParams p) {
  __shared__ float warp_amax[kThreads / 32];
  const int64_t r0 = int64_t{blockIdx.y} * kFp8BlockSize, c0 = int64_t{blockIdx.x} * kFp8BlockSize;
  const int rows = static_cast<int>(p.n - r0 < kFp8BlockSize ? p.n - r0 : kFp8BlockSize);
  const int cols = static_cast<int>(p.k - c0 < kFp8BlockSize ? p.k - c0 : kFp8BlockSize);
  const int tid = static_cast<int>(threadIdx.x);
  float amax = kFp8AmaxFloor;
  for (int i = tid; i < rows * kFp8BlockSize; i += kThreads) {
    const int r = i / kFp8BlockSize, c = i % kFp8BlockSize;
    if (c < cols) amax = fmaxf(amax, fabsf(__bfloat162float(p.w[(r0 + r) * p.k + c0 + c])));
  }
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, d));
  if ((tid & 31) == 0) warp_amax[tid >> 5] = amax;
  __syncthreads();
  amax = warp_amax[0];
#pragma unroll
  for (int i = 1; i < kThreads / 32; ++i) amax = fmaxf(amax, warp_amax[i]);
  const float to_fp8 = __fdiv_rn(kE4M3Max, amax);
  auto* q = reinterpret_cast<__nv_fp8_storage_t*>(p.w_q);
  for (int i = tid; i < rows * kFp8BlockSize; i += kThreads) {
    const int r = i / kFp8BlockSize, c = i % kFp8BlockSize;
    if (c >= cols) continue;
    const int64_t at = (r0 + r) * p.k + c0 + c;
    q[at] = __nv_cvt_float_to_fp8(__fmul_rn(__bfloat162float(p.w[at]), to_fp8), __NV_SATFINITE, __NV_E4M3);
  }
  if (tid == 0) p.scale_inv[blockIdx.y * gridDim.x + blockIdx.x] = __fdiv_rn(amax, kE4M3Max);
}

}  // namespace

void quantize_weight_block_fp8_cuda(const Tensor& w, Tensor& w_q, Tensor& scale_inv, cudaStream_t stream) {
  constexpr std::string_view kOp = "quantize_weight_block_fp8_cuda";
  gpu::check_dtype(kOp, "w", w, DType::kBF16);
  gpu::check_dtype(kOp, "w_q", w_q, DType::kF8E4M3);
  gpu::check_dtype(kOp, "scale_inv", scale_inv, DType::kF32);
  MLA_CHECK(w.ndim() == 2, "{}: w {} must be [N, K]", kOp, shape_str(w.shape()));
  const int64_t n = w.dim(0), k = w.dim(1);
  gpu::check_shape(kOp, "w_q", w_q, {n, k});
  gpu::check_shape(kOp, "scale_inv", scale_inv, {fp8_num_blocks(n), fp8_num_blocks(k)});
  if (n == 0 || k == 0) return;
  MLA_CHECK(fp8_num_blocks(n) < 65536, "{}: {} row blocks exceed the grid", kOp, fp8_num_blocks(n));
  const dim3 grid(static_cast<unsigned>(fp8_num_blocks(k)), static_cast<unsigned>(fp8_num_blocks(n)));
  quantize_weight_block_fp8_kernel<<<grid, kThreads, 0, stream>>>(WeightQuantParams{
      gpu::ptr<const __nv_bfloat16>(w), gpu::ptr<__nv_fp8_e4m3>(w_q), gpu::ptr<float>(scale_inv), n, k});
  MLA_CUDA_CHECK_LAUNCH();
}

}  // namespace mlaserve::ops
