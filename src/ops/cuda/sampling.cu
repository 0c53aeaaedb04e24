// Greedy sampling, filtered seeded sampling and log-softmax on the GPU (contract:
// ops/cuda/sampling_cuda.h). The sampling kernel's design is in sampling_filtered.cuh; the block
// reductions all three share are in sampling_block.cuh.
//
// Design: one CTA of 512 threads per row of logits (a decode batch is tens to hundreds of rows of
// V = 102400 or 129280 f32, 400-520 KB each). Threads stride over the row, 4 tokens per load
// where aligned (for_each_token), so every warp load is coalesced; per-thread partial results
// are combined by warp shuffles, then across the 16 warps through shared memory, always in the
// same order, so results are deterministic.
//   greedy: per-thread best (value, id) with "larger value, then lower id" (a total order on
//           NaN-free rows: the reduction order cannot change the winner, which is the CPU's
//           first maximum).
//   sample: the row's best logit, then histogram passes over it (sampling_filtered.cuh); below
//           about a row an SM, each row split over a cluster of 2-8 CTAs (ops/sampling_split.h).
//   log_softmax: three passes over the row (it stays in L2): the max; Σ exp(x - max) in double
//           (the CPU reference's precision); out = x - float(max + log Σ).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/cuda_check.h"
#include "core/upload.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/sampling_block.cuh"
#include "ops/cuda/sampling_cuda.h"
#include "ops/cuda/sampling_filtered.cuh"
#include "ops/sampling_split.h"

namespace mlaserve::ops {
namespace {

using sampling_gpu::block_best;
using sampling_gpu::block_reduce;
using sampling_gpu::kThreads;
using sampling_gpu::kWarps;
using sampling_gpu::ranks_before;

struct RowsParams {
  const float* logits;  // [B, V]
  int32_t* token_ids;   // [B] greedy output
  float* out;           // [B, V] log_softmax output
  int64_t rows;         // B
  int64_t vocab;        // V
};

// grid min(B, 65535), block kThreads.
__global__ void __launch_bounds__(kThreads) greedy_sample_kernel(RowsParams p) {
  __shared__ float values[kWarps];
  __shared__ int32_t ids[kWarps];
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    const float* x = p.logits + row * p.vocab;
    float best = -INFINITY;
    int32_t best_id = INT32_MAX;  // ranks after every real token, -inf ones included
    sampling_gpu::for_each_token(x, static_cast<int32_t>(p.vocab), [&](int32_t i, float v) {
      if (ranks_before(v, i, best, best_id)) best = v, best_id = i;
    });
    block_best(best, best_id, values, ids);
    if (threadIdx.x == 0) p.token_ids[row] = best_id;
  }
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

// sample_kernel<C> over p.num_rows rows: grid C x min(B, 65535), clusters of C.
template <int C>
void launch_sample(const sampling_gpu::SampleParams& p, cudaStream_t stream) {
  constexpr auto kSmem = static_cast<int>(sampling_gpu::kSampleSmemBytes);
  static const bool smem_set = [] {  // once per process and C (one GPU per process)
    MLA_CUDA_CHECK(
        cudaFuncSetAttribute(sampling_gpu::sample_kernel<C>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
    return true;
  }();
  (void)smem_set;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(C * std::min<int64_t>(p.num_rows, 65535)));
  config.blockDim = dim3(sampling_gpu::kThreads);
  config.dynamicSmemBytes = kSmem;
  config.stream = stream;
  cudaLaunchAttribute cluster{};
  cluster.id = cudaLaunchAttributeClusterDimension;
  cluster.val.clusterDim.x = C;
  cluster.val.clusterDim.y = 1;
  cluster.val.clusterDim.z = 1;
  config.attrs = &cluster;
  config.numAttrs = C > 1 ? 1 : 0;
  MLA_CUDA_CHECK(cudaLaunchKernelEx(&config, sampling_gpu::sample_kernel<C>, p));
}

void check_logits(std::string_view op, const Tensor& logits) {
  gpu::check_dtype(op, "logits", logits, DType::kF32);
  MLA_CHECK(logits.ndim() == 2 && logits.dim(1) >= 1 && logits.dim(1) <= (int64_t{1} << 30),
            "{}: logits {} must be [B, V], 1 <= V <= 2^30", op, shape_str(logits.shape()));
}

}  // namespace

void sample_cuda(const Tensor& logits, const SamplingOptions* options, const SamplingKey* keys, Tensor& token_ids,
                 cudaStream_t stream) {
  constexpr std::string_view kOp = "sample_cuda";
  check_logits(kOp, logits);
  gpu::check_dtype(kOp, "token_ids", token_ids, DType::kI32);
  gpu::check_shape(kOp, "token_ids", token_ids, {logits.dim(0)});
  const int64_t b = logits.dim(0), v = logits.dim(1);
  check_sampling_options(kOp, options, b);
  if (b == 0) return;
  // Every row greedy (the usual batch): the argmax kernel alone, with no options to upload.
  if (std::all_of(options, options + b, [](const SamplingOptions& o) { return o.temperature <= 0.0f; })) {
    return greedy_sample_cuda(logits, token_ids, stream);
  }
  std::vector<sampling_gpu::RowOptions> rows(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i) {
    const SamplingOptions& o = options[i];
    rows[i] = {o.temperature, o.top_p, o.min_p, static_cast<int32_t>(o.top_k < v ? o.top_k : 0), keys[i]};
  }
  // Stream-ordered like every temporary of the ops (core/memory.h), through pinned staging
  // (core/upload.h): a pageable cudaMemcpyAsync may wait for the stream first.
  const Tensor dev_rows = upload_async(rows.data(), {b * static_cast<int64_t>(sizeof(sampling_gpu::RowOptions))},
                                       DType::kU8, Stream{stream});
  const sampling_gpu::SampleParams p{gpu::ptr<const float>(logits), gpu::ptr<const sampling_gpu::RowOptions>(dev_rows),
                                     gpu::ptr<int32_t>(token_ids), b, static_cast<int32_t>(v)};
  switch (ctas_per_row(b, gpu::device_sm_count())) {
    case 8: return launch_sample<8>(p, stream);
    case 4: return launch_sample<4>(p, stream);
    case 2: return launch_sample<2>(p, stream);
    default: return launch_sample<1>(p, stream);
  }
}

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
