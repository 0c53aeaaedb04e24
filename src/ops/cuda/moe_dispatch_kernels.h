// The kernels behind the MoE grouping (moe_group_by_expert_cuda, moe_group_and_gather_cuda:
// ops/moe_dispatch.h) and the combine (moe_combine_cuda, and moe_combine_add_rms_norm_cuda and its
// FP8 form: ops/moe_combine_norm.h), internal to src/ops/cuda (and their tests and moe_dispatch_bench): the
// rules that pick one by size, and overloads of the ops that let tests and the bench force either.
// Host-only, no CUDA types. The kernels' notes: moe_dispatch.cuh, moe_combine.cuh,
// moe_combine_norm.cuh.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "core/tensor.h"
#include "ops/moe_combine_norm.h"
#include "ops/moe_dispatch.h"

namespace mlaserve::ops {

enum class MoeGroupKernel : uint8_t {
  kAuto,      // choose_group_kernel
  kOneCta,    // moe_group_by_expert_kernel: one CTA, one launch, ~3 us per 1024 pairs on an H200
  kMultiCta,  // histogram, scan and scatter kernels over up to kGroupMaxCtas CTAs of 1024 pairs
};

enum class MoeCombineKernel : uint8_t {
  kAuto,  // choose_combine_kernel
  kScan,  // each CTA scans sorted_pairs for its token's positions: one launch; k <= kCombineScanMaxTopK
  kRows,  // the inverse of sorted_pairs (invert_pairs), then one CTA a token row
};

const char* group_kernel_name(MoeGroupKernel kernel);
const char* combine_kernel_name(MoeCombineKernel kernel);

// Up to this many pairs the one-CTA sort: one launch, ~3.4 us per chunk of 1024 pairs on an H200
// (33.5 us at 9600 pairs, ncu), where the three kernels of the multi-CTA sort each cost about a
// chunk's time whatever P (a launch, one pass over the CTA's ids, a few shared-memory steps) and
// the gather that follows waits for the last. Two chunks (~7 us) is where the two meet; a decode
// batch (T <= 341 at V2-Lite's top-6, 256 at V3's top-8) keeps its one launch.
inline constexpr int64_t kGroupOneCtaMaxPairs = 2048;

// The combine's limits: the scan kernel up to kCombineScanPairs pairs (each CTA reads all of
// sorted_pairs: P i32 from L2, a few loads a thread) and k <= kCombineScanMaxTopK; the row kernels
// stage a token's k <= kCombineMaxTopK pairs in shared memory (the CUDA router's limit,
// kRouterMaxTopK).
inline constexpr int64_t kCombineScanPairs = 2048;
inline constexpr int kCombineScanMaxTopK = 16;
inline constexpr int kCombineMaxTopK = 32;

inline MoeGroupKernel choose_group_kernel(int64_t pairs) {
  return pairs <= kGroupOneCtaMaxPairs ? MoeGroupKernel::kOneCta : MoeGroupKernel::kMultiCta;
}

// Decode batches scan (one launch instead of two, ~5 us less of a step's serial chain); larger
// ones take the rows kernels, whose CTAs find their positions in one load instead of a scan of P.
inline MoeCombineKernel choose_combine_kernel(int64_t pairs, int64_t top_k) {
  return pairs <= kCombineScanPairs && top_k <= kCombineScanMaxTopK ? MoeCombineKernel::kScan
                                                                    : MoeCombineKernel::kRows;
}

// k within the combine kernels' limits (kCombineMaxTopK; kCombineScanMaxTopK for kScan).
inline void check_combine_top_k(std::string_view op, int64_t top_k, MoeCombineKernel kernel) {
  MLA_CHECK(top_k <= kCombineMaxTopK, "{}: k = {} is above the combine kernels' {}", op, top_k, kCombineMaxTopK);
  MLA_CHECK(kernel != MoeCombineKernel::kScan || top_k <= kCombineScanMaxTopK,
            "{}: the scan kernel takes k <= {}, not {}", op, kCombineScanMaxTopK, top_k);
}

// The ops with the kernel named: the same contracts, outputs and checks (plus k <=
// kCombineScanMaxTopK for kScan).
void moe_group_by_expert_cuda(const Tensor& expert_ids, int64_t num_experts, MoeGrouping& grouping,
                              cudaStream_t stream, MoeGroupKernel kernel);
void moe_group_and_gather_cuda(const Tensor& expert_ids, int64_t num_experts, const Tensor& x, MoeGrouping& grouping,
                               Tensor& gathered, cudaStream_t stream, MoeGroupKernel kernel);
void moe_combine_cuda(const Tensor& expert_out, const Tensor& sorted_pairs, const Tensor& weights, Tensor& y,
                      cudaStream_t stream, MoeCombineKernel kernel, const MoeCombineScope& scope = {});
void moe_combine_add_rms_norm_cuda(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                                   Tensor& out, cudaStream_t stream, MoeCombineKernel kernel);
void moe_combine_add_rms_norm_fp8_cuda(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                                       Tensor& out, const ActQuantParams& act, Fp8Activations& out_q,
                                       cudaStream_t stream, MoeCombineKernel kernel);

}  // namespace mlaserve::ops
