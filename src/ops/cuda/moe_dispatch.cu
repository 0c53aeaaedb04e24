// MoE dispatch and combine on the GPU: argument checks and launches. The design notes and the
// kernels are in moe_dispatch.cuh (grouping) and moe_combine.cuh (combine); the rules that pick a
// kernel, moe_dispatch_kernels.h.
#include "ops/cuda/moe_dispatch.cuh"

#include <algorithm>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/moe_dispatch_kernels.h"
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

// The grouping by `kernel`, kOneCta or kMultiCta (the caller resolves kAuto). The multi-CTA sort's
// workspace comes from the caching allocator and goes back to it when this returns: its kernels
// are queued on stream before any later owner's work.
void launch_group(const gpu::MoeGroupParams& p, MoeGroupKernel kernel, cudaStream_t stream) {
  if (kernel == MoeGroupKernel::kOneCta) {
    gpu::launch_programmatic(gpu::moe_group_by_expert_kernel, 1, gpu::kGroupThreads, 0, stream, p);
    return;
  }
  const int64_t chunks = std::max<int64_t>((int64_t{p.pairs} + gpu::kGroupThreads - 1) / gpu::kGroupThreads, 1);
  const int64_t cta_chunks = (chunks + gpu::kGroupMaxCtas - 1) / gpu::kGroupMaxCtas;
  const int64_t cta_pairs = cta_chunks * gpu::kGroupThreads;
  const int64_t ctas = std::max<int64_t>((int64_t{p.pairs} + cta_pairs - 1) / cta_pairs, 1);
  Tensor counts = Tensor::empty({p.experts + 1, ctas}, DType::kI32, Device::kCUDA);  // [E + 1, C]
  const gpu::MoeGroupSplit split{gpu::ptr<int32_t>(counts), static_cast<int32_t>(ctas),
                                 static_cast<int32_t>(cta_pairs)};
  const dim3 grid(static_cast<unsigned>(ctas));
  gpu::launch_programmatic(gpu::moe_group_histogram_kernel, grid, gpu::kGroupThreads, 0, stream, p, split);
  gpu::launch_programmatic(gpu::moe_group_scan_kernel, 1, gpu::kGroupThreads, 0, stream, p, split);
  gpu::launch_programmatic(gpu::moe_group_scatter_kernel, grid, gpu::kGroupThreads, 0, stream, p, split);
}

MoeGroupKernel resolve(MoeGroupKernel kernel, int64_t pairs) {
  return kernel == MoeGroupKernel::kAuto ? choose_group_kernel(pairs) : kernel;
}

}  // namespace

const char* group_kernel_name(MoeGroupKernel kernel) {
  switch (kernel) {
    case MoeGroupKernel::kAuto: return "auto";
    case MoeGroupKernel::kOneCta: return "one_cta";
    case MoeGroupKernel::kMultiCta: return "multi_cta";
  }
  return "?";
}

const char* combine_kernel_name(MoeCombineKernel kernel) {
  switch (kernel) {
    case MoeCombineKernel::kAuto: return "auto";
    case MoeCombineKernel::kScan: return "scan";
    case MoeCombineKernel::kRows: return "rows";
  }
  return "?";
}

void moe_group_by_expert_cuda(const Tensor& expert_ids, int64_t num_experts, MoeGrouping& grouping,
                              cudaStream_t stream) {
  moe_group_by_expert_cuda(expert_ids, num_experts, grouping, stream, MoeGroupKernel::kAuto);
}

void moe_group_by_expert_cuda(const Tensor& expert_ids, int64_t num_experts, MoeGrouping& grouping,
                              cudaStream_t stream, MoeGroupKernel kernel) {
  const gpu::MoeGroupParams p = group_params("moe_group_by_expert_cuda", expert_ids, num_experts, grouping);
  launch_group(p, resolve(kernel, p.pairs), stream);
}

void moe_group_and_gather_cuda(const Tensor& expert_ids, int64_t num_experts, const Tensor& x, MoeGrouping& grouping,
                               Tensor& gathered, cudaStream_t stream) {
  moe_group_and_gather_cuda(expert_ids, num_experts, x, grouping, gathered, stream, MoeGroupKernel::kAuto);
}

void moe_group_and_gather_cuda(const Tensor& expert_ids, int64_t num_experts, const Tensor& x, MoeGrouping& grouping,
                               Tensor& gathered, cudaStream_t stream, MoeGroupKernel kernel) {
  constexpr std::string_view kOp = "moe_group_and_gather_cuda";
  gpu::MoeGroupParams p = group_params(kOp, expert_ids, num_experts, grouping);
  gpu::check_dtype(kOp, "x", x, DType::kBF16);
  gpu::check_dtype(kOp, "gathered", gathered, DType::kBF16);
  MLA_CHECK(x.ndim() == 2 && x.dim(0) == expert_ids.dim(0), "{}: x {} must be [T, H] for expert_ids {}", kOp,
            shape_str(x.shape()), shape_str(expert_ids.shape()));
  const int64_t h = x.dim(1);
  gpu::check_shape(kOp, "gathered", gathered, {expert_ids.numel(), h});
  kernel = resolve(kernel, p.pairs);
  if (kernel == MoeGroupKernel::kMultiCta || p.pairs > gpu::kGroupGatherMaxPairs || h % 8 != 0 ||
      !gpu::aligned16(x) || !gpu::aligned16(gathered)) {
    launch_group(p, kernel, stream);  // then the gather: its own launch
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

// grid-stride over P; launched with launch_programmatic.
__global__ void __launch_bounds__(kCombineThreads)
    moe_invert_pairs_kernel(const int32_t* sorted_pairs, int32_t* position, int64_t pairs) {
  grid_dependency_wait();  // sorted_pairs comes from the grouping, kernels before
  launch_dependents();
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t pos = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; pos < pairs; pos += stride) {
    const int32_t pair = sorted_pairs[pos];
    if (pair >= 0 && pair < pairs) position[pair] = static_cast<int32_t>(pos);
  }
}

}  // namespace

Tensor invert_pairs(const int32_t* sorted_pairs, int64_t pairs, cudaStream_t stream) {
  Tensor position = Tensor::empty({pairs}, DType::kI32, Device::kCUDA);  // [P]
  launch_programmatic(moe_invert_pairs_kernel, grid_blocks(pairs, kCombineThreads), kCombineThreads, 0, stream,
                      sorted_pairs, ptr<int32_t>(position), pairs);
  return position;
}

}  // namespace gpu

namespace {

template <typename Y>
void launch_combine(gpu::MoeCombineParams<Y> p, bool vec8, MoeCombineKernel kernel, cudaStream_t stream) {
  const int64_t pairs = p.tokens * p.top_k, vectors = vec8 ? p.hidden / 8 : p.hidden;
  const dim3 grid(static_cast<unsigned>((vectors + gpu::kCombineThreads - 1) / gpu::kCombineThreads),
                  static_cast<unsigned>(std::min<int64_t>(p.tokens, 65535)));
  if (kernel == MoeCombineKernel::kScan) {
    if (vec8) {
      gpu::launch_programmatic(gpu::moe_combine_scan_kernel<8, Y>, grid, gpu::kCombineThreads, 0, stream, p);
    } else {
      gpu::launch_programmatic(gpu::moe_combine_scan_kernel<1, Y>, grid, gpu::kCombineThreads, 0, stream, p);
    }
    return;
  }
  const Tensor position = gpu::invert_pairs(p.sorted_pairs, pairs, stream);  // [T·k] the inverse of sorted_pairs
  p.position = gpu::ptr<const int32_t>(position);
  if (vec8) {
    gpu::launch_programmatic(gpu::moe_combine_rows_kernel<8, Y>, grid, gpu::kCombineThreads, 0, stream, p);
  } else {
    gpu::launch_programmatic(gpu::moe_combine_rows_kernel<1, Y>, grid, gpu::kCombineThreads, 0, stream, p);
  }
}

}  // namespace

void moe_combine_cuda(const Tensor& expert_out, const Tensor& sorted_pairs, const Tensor& weights, Tensor& y,
                      cudaStream_t stream, const MoeCombineScope& scope) {
  moe_combine_cuda(expert_out, sorted_pairs, weights, y, stream, MoeCombineKernel::kAuto, scope);
}

void moe_combine_cuda(const Tensor& expert_out, const Tensor& sorted_pairs, const Tensor& weights, Tensor& y,
                      cudaStream_t stream, MoeCombineKernel kernel, const MoeCombineScope& scope) {
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
  check_combine_top_k(kOp, k, kernel);
  const Tensor& held = scope.held_offsets;
  if (held.defined()) {
    gpu::check_dtype(kOp, "held_offsets", held, DType::kI32);
    MLA_CHECK(held.ndim() == 1 && held.numel() >= 1 && held.device() == Device::kCUDA,
              "{}: held_offsets {} must be a [e1 - e0 + 1] GPU tensor", kOp, shape_str(held.shape()));
  }
  if (pairs == 0 || h == 0) {
    if (!scope.accumulate) y.fill_bytes(0, Stream{stream});
    return;
  }
  if (kernel == MoeCombineKernel::kAuto) kernel = choose_combine_kernel(pairs, k);

  const bool vec8 = h % 8 == 0 && gpu::aligned16(expert_out) && gpu::aligned16(y);
  const auto* out = gpu::ptr<const __nv_bfloat16>(expert_out);
  const auto* pairs_ptr = gpu::ptr<const int32_t>(sorted_pairs);
  const auto* w = gpu::ptr<const float>(weights);
  const int32_t* held_ptr = held.defined() ? gpu::ptr<const int32_t>(held) : nullptr;
  const auto held_experts = static_cast<int32_t>(held.defined() ? held.numel() - 1 : 0);
  const auto top_k = static_cast<int32_t>(k);
  if (y.dtype() == DType::kF32) {
    launch_combine<float>({out, pairs_ptr, nullptr, w, gpu::ptr<float>(y), t, top_k, h, held_ptr, held_experts,
                           scope.accumulate, scope.early_inputs},
                          vec8, kernel, stream);
  } else {
    launch_combine<__nv_bfloat16>({out, pairs_ptr, nullptr, w, gpu::ptr<__nv_bfloat16>(y), t, top_k, h, held_ptr,
                                   held_experts, scope.accumulate, scope.early_inputs},
                                  vec8, kernel, stream);
  }
}

}  // namespace mlaserve::ops
