// Greedy sampling and log-softmax on the GPU (contract: ops/cuda/sampling_cuda.h).
//
// Design: one CTA of 512 threads per row of logits (a decode batch is tens to hundreds of rows of
// V = 102400 or 129280 f32, 400-520 KB each). Threads stride over the row, so every warp load is
// one coalesced 128-byte line; per-thread partial results are combined by warp shuffles, then
// across the 16 warps through shared memory, always in the same order, so results are
// deterministic.
//   greedy: per-thread best (value, id) with "larger value, then lower id" (a total order on
//           NaN-free rows: the reduction order cannot change the winner, which is the CPU's
//           first maximum).
//   log_softmax: three passes over the row (it stays in L2): the max; Σ exp(x - max) in double
//           (the CPU reference's precision); out = x - float(max + log Σ).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/sampling_cuda.h"

namespace mlaserve::ops {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;

struct RowsParams {
  const float* logits;  // [B, V]
  int32_t* token_ids;   // [B] greedy output
  float* out;           // [B, V] log_softmax output
  int64_t rows;         // B
  int64_t vocab;        // V
};

__device__ __forceinline__ bool ranks_before(float v1, int32_t i1, float v2, int32_t i2) {
  return v1 > v2 || (v1 == v2 && i1 < i2);
}

// Reduces (value, id) over the CTA with ranks_before; thread 0 gets the winner's id.
__device__ int32_t block_best(float v, int32_t id, float* values, int32_t* ids) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int32_t oid = __shfl_xor_sync(0xffffffffu, id, o);
    if (ranks_before(ov, oid, v, id)) v = ov, id = oid;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) values[warp] = v, ids[warp] = id;
  __syncthreads();
  if (warp == 0) {
    v = lane < kWarps ? values[lane] : -INFINITY;
    id = lane < kWarps ? ids[lane] : INT32_MAX;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, v, o);
      const int32_t oid = __shfl_xor_sync(0xffffffffu, id, o);
      if (ranks_before(ov, oid, v, id)) v = ov, id = oid;
    }
  }
  __syncthreads();  // values/ids may be reused
  return id;
}

// grid min(B, 65535), block kThreads.
__global__ void __launch_bounds__(kThreads) greedy_sample_kernel(RowsParams p) {
  __shared__ float values[kWarps];
  __shared__ int32_t ids[kWarps];
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    const float* x = p.logits + row * p.vocab;
    float best = -INFINITY;
    int32_t best_id = INT32_MAX;  // ranks after every real token, -inf ones included
    for (int32_t i = threadIdx.x; i < p.vocab; i += kThreads) {
      const float v = x[i];
      if (ranks_before(v, i, best, best_id)) best = v, best_id = i;
    }
    const int32_t winner = block_best(best, best_id, values, ids);
    if (threadIdx.x == 0) p.token_ids[row] = winner;
  }
}

// Max (float) or sum (double) over the CTA; every thread gets the result.
template <typename T, typename Op>
__device__ T block_reduce(T v, T* scratch, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = scratch[0];
  for (int w = 1; w < kWarps; ++w) r = op(r, scratch[w]);
  __syncthreads();  // scratch may be reused
  return r;
}

// grid min(B, 65535), block kThreads.
__global__ void __launch_bounds__(kThreads) log_softmax_kernel(RowsParams p) {
  __shared__ float max_scratch[kWarps];
  __shared__ double sum_scratch[kWarps];
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    const float* x = p.logits + row * p.vocab;
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < p.vocab; i += kThreads) m = fmaxf(m, x[i]);
    m = block_reduce(m, max_scratch, [](float a, float b) { return fmaxf(a, b); });
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < p.vocab; i += kThreads) sum += exp(static_cast<double>(x[i]) - m);
    sum = block_reduce(sum, sum_scratch, [](double a, double b) { return a + b; });
    const auto log_z = static_cast<float>(m + log(sum));
    float* out = p.out + row * p.vocab;
    for (int64_t i = threadIdx.x; i < p.vocab; i += kThreads) out[i] = x[i] - log_z;
  }
}

void check_logits(std::string_view op, const Tensor& logits) {
  gpu::check_dtype(op, "logits", logits, DType::kF32);
  MLA_CHECK(logits.ndim() == 2 && logits.dim(1) >= 1 && logits.dim(1) <= (int64_t{1} << 30),
            "{}: logits {} must be [B, V], 1 <= V <= 2^30", op, shape_str(logits.shape()));
}

}  // namespace

void greedy_sample_cuda(const Tensor& logits, Tensor& token_ids, cudaStream_t stream) {
  constexpr std::string_view kOp = "greedy_sample_cuda";
  check_logits(kOp, logits);
  gpu::check_dtype(kOp, "token_ids", token_ids, DType::kI32);
  gpu::check_shape(kOp, "token_ids", token_ids, {logits.dim(0)});
  const RowsParams p{gpu::ptr<const float>(logits), gpu::ptr<int32_t>(token_ids), nullptr, logits.dim(0),
                     logits.dim(1)};
  if (p.rows == 0) return;
  greedy_sample_kernel<<<static_cast<unsigned>(std::min<int64_t>(p.rows, 65535)), kThreads, 0, stream>>>(p);
  MLA_CUDA_CHECK_LAUNCH();
}

void log_softmax_cuda(const Tensor& logits, Tensor& out, cudaStream_t stream) {
  constexpr std::string_view kOp = "log_softmax_cuda";
  check_logits(kOp, logits);
  gpu::check_dtype(kOp, "out", out, DType::kF32);
  gpu::check_shape(kOp, "out", out, logits.shape());
  const RowsParams p{gpu::ptr<const float>(logits), nullptr, gpu::ptr<float>(out), logits.dim(0), logits.dim(1)};
  if (p.rows == 0) return;
  log_softmax_kernel<<<static_cast<unsigned>(std::min<int64_t>(p.rows, 65535)), kThreads, 0, stream>>>(p);
  MLA_CUDA_CHECK_LAUNCH();
}

}  // namespace mlaserve::ops
