// MoE dispatch and combine on the GPU: argument checks and launches. The design notes and the
// kernels are in moe_dispatch.cuh (grouping) and moe_combine.cuh (combine).
#include "ops/cuda/moe_dispatch.cuh"

#include <algorithm>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/moe_grouping_checks.h"
#include "ops/embedding.h"
#include "ops/moe_dispatch.h"

namespace mlaserve::ops {

namespace {

gpu::MoeGroupParams group_params(std::string_view op, const Tensor& expert_ids, int64_t num_experts,
                                 MoeGrouping& grouping) {
  const std::string_view kOp = op;
  gpu::check_dtype(kOp, "expert_ids", expert_ids, DType::kI32);
  MLA_CHECK(expert_ids.ndim() == 2 && num_experts >= 1 && num_experts <= gpu::kMoeMaxExperts,
            "{}: expert_ids {} must be [T, k], 1 <= E = {} <= {}", kOp, shape_str(expert_ids.shape()), num_experts,
            gpu::kMoeMaxExperts);
  const int64_t pairs = expert_ids.numel();
  MLA_CHECK(pairs < (int64_t{1} << 31), "{}: {} pairs do not fit i32 positions", kOp, pairs);
  gpu::check_grouping(kOp, grouping, num_experts, pairs);

  return gpu::MoeGroupParams{gpu::ptr<const int32_t>(expert_ids),
                             gpu::ptr<int32_t>(grouping.expert_offsets),
                             gpu::ptr<int32_t>(grouping.sorted_pairs),
                             gpu::ptr<int32_t>(grouping.sorted_tokens),
                             static_cast<int32_t>(pairs),
                             static_cast<int32_t>(std::max<int64_t>(expert_ids.dim(1), 1)),
                             static_cast<int32_t>(num_experts),
                             nullptr,
                             nullptr,
                             0};
}

}  // namespace

void moe_group_by_expert_cuda(const Tensor& expert_ids, int64_t num_experts, MoeGrouping& grouping,
                              cudaStream_t stream) {
  const gpu::MoeGroupParams p = group_params("moe_group_by_expert_cuda", expert_ids, num_experts, grouping);
  gpu::launch_programmatic(gpu::moe_group_by_expert_kernel, 1, gpu::kGroupThreads, 0, stream, p);
}

void moe_group_and_gather_cuda(const Tensor& expert_ids, int64_t num_experts, const Tensor& x, MoeGrouping& grouping,
                               Tensor& gathered, cudaStream_t stream) {
  constexpr std::string_view kOp = "moe_group_and_gather_cuda";
  gpu::MoeGroupParams p = group_params(kOp, expert_ids, num_experts, grouping);
  gpu::check_dtype(kOp, "x", x, DType::kBF16);
  gpu::check_dtype(kOp, "gathered", gathered, DType::kBF16);
  MLA_CHECK(x.ndim() == 2 && x.dim(0) == expert_ids.dim(0), "{}: x {} must be [T, H] for expert_ids {}", kOp,
            shape_str(x.shape()), shape_str(expert_ids.shape()));
  const int64_t h = x.dim(1);
  gpu::check_shape(kOp, "gathered", gathered, {expert_ids.numel(), h});
  if (p.pairs > gpu::kGroupGatherMaxPairs || h % 8 != 0 || !gpu::aligned16(x) || !gpu::aligned16(gathered)) {
    gpu::launch_programmatic(gpu::moe_group_by_expert_kernel, 1, gpu::kGroupThreads, 0, stream, p);  // two launches
    embedding_cuda(grouping.sorted_tokens, x, gathered, stream);
    return;
  }
  p.x = gpu::ptr<const __nv_bfloat16>(x);
  p.gathered = gpu::ptr<__nv_bfloat16>(gathered);
  p.hidden = h;
  gpu::launch_programmatic(gpu::moe_group_by_expert_kernel, 1, gpu::kGroupThreads, 0, stream, p);
}

namespace gpu {
namespace {

// grid-stride over P; position[] must be -1 beforehand.
__global__ void __launch_bounds__(kCombineThreads)
    moe_invert_pairs_kernel(const int32_t* sorted_pairs, int32_t* position, int64_t pairs) {
  for (int64_t pos = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; pos < pairs; pos += int64_t{gridDim.x} * blockDim.x) {
    const int32_t pair = sorted_pairs[pos];
    if (pair >= 0 && pair < pairs) position[pair] = static_cast<int32_t>(pos);
  }
}

}  // namespace

int32_t* invert_pairs_async(const int32_t* sorted_pairs, int64_t pairs, cudaStream_t stream) {
  int32_t* position = nullptr;
  const size_t bytes = static_cast<size_t>(pairs) * sizeof(int32_t);
  MLA_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&position), bytes, stream));
  MLA_CUDA_CHECK(cudaMemsetAsync(position, 0xFF, bytes, stream));  // -1: no sorted position
  moe_invert_pairs_kernel<<<grid_blocks(pairs, kCombineThreads), kCombineThreads, 0, stream>>>(sorted_pairs, position,
                                                                                             pairs);
  MLA_CUDA_CHECK_LAUNCH();
  return position;
}

}  // namespace gpu

namespace {

template <typename Y>
void launch_combine(gpu::MoeCombineParams<Y> p, bool vec8, cudaStream_t stream) {
  const int64_t pairs = p.tokens * p.top_k;
  if (pairs <= gpu::kCombineScanPairs && p.top_k <= gpu::kCombineScanMaxTopK) {  // decode batches: one launch
    const int64_t vectors = vec8 ? p.hidden / 8 : p.hidden;
    const dim3 grid(static_cast<unsigned>((vectors + gpu::kCombineThreads - 1) / gpu::kCombineThreads),
                    static_cast<unsigned>(std::min<int64_t>(p.tokens, 65535)));
    if (vec8) {
      gpu::launch_programmatic(gpu::moe_combine_scan_kernel<8, Y>, grid, gpu::kCombineThreads, 0, stream, p);
    } else {
      gpu::launch_programmatic(gpu::moe_combine_scan_kernel<1, Y>, grid, gpu::kCombineThreads, 0, stream, p);
    }
    return;
  }
  p.position = gpu::invert_pairs_async(p.sorted_pairs, pairs, stream);
  const int64_t vectors = vec8 ? p.hidden / 8 : p.hidden;
  const dim3 grid(static_cast<unsigned>((vectors + gpu::kCombineThreads - 1) / gpu::kCombineThreads),
                  static_cast<unsigned>(std::min<int64_t>(p.tokens, 65535)));
  if (vec8) {
    gpu::moe_combine_kernel<8, Y><<<grid, gpu::kCombineThreads, 0, stream>>>(p);
  } else {
    gpu::moe_combine_kernel<1, Y><<<grid, gpu::kCombineThreads, 0, stream>>>(p);
  }
  MLA_CUDA_CHECK_LAUNCH();
  MLA_CUDA_CHECK(cudaFreeAsync(p.position, stream));
}

}  // namespace

void moe_combine_cuda(const Tensor& expert_out, const Tensor& sorted_pairs, const Tensor& weights, Tensor& y,
                      cudaStream_t stream) {
  constexpr std::string_view kOp = "moe_combine_cuda";
  gpu::check_dtype(kOp, "expert_out", expert_out, DType::kBF16);
  gpu::check_dtype(kOp, "sorted_pairs", sorted_pairs, DType::kI32);
  gpu::check_dtype(kOp, "weights", weights, DType::kF32);
  gpu::check_f32_or_bf16(kOp, "y", y);
  MLA_CHECK(weights.ndim() == 2 && y.ndim() == 2 && expert_out.ndim() == 2,
            "{}: weights {} must be [T, k], y {} [T, H], expert_out {} [T·k, H]", kOp, shape_str(weights.shape()),
            shape_str(y.shape()), shape_str(expert_out.shape()));
  const int64_t t = weights.dim(0), k = weights.dim(1), h = y.dim(1), pairs = t * k;
  gpu::check_shape(kOp, "y", y, {t, h});
  gpu::check_shape(kOp, "expert_out", expert_out, {pairs, h});
  gpu::check_shape(kOp, "sorted_pairs", sorted_pairs, {pairs});
  MLA_CHECK(pairs < (int64_t{1} << 31), "{}: {} pairs do not fit i32 positions", kOp, pairs);
  if (pairs == 0 || h == 0) return;

  const bool vec8 = h % 8 == 0 && gpu::aligned16(expert_out) && gpu::aligned16(y);
  const auto* out = gpu::ptr<const __nv_bfloat16>(expert_out);
  const auto* pairs_ptr = gpu::ptr<const int32_t>(sorted_pairs);
  const auto* w = gpu::ptr<const float>(weights);
  if (y.dtype() == DType::kF32) {
    launch_combine<float>({out, pairs_ptr, nullptr, w, gpu::ptr<float>(y), t, static_cast<int32_t>(k), h}, vec8, stream);
  } else {
    launch_combine<__nv_bfloat16>({out, pairs_ptr, nullptr, w, gpu::ptr<__nv_bfloat16>(y), t, static_cast<int32_t>(k), h},
                                  vec8, stream);
  }
}

}  // namespace mlaserve::ops
