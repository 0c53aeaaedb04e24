// mla_absorbed_attention_cuda and its fit test (ops/mla_absorbed_attention.h): the shape and
// alignment checks, then one launch of the fused kernel (mla_absorbed_sm90.cuh).
#include <algorithm>
#include <cmath>
#include <string>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/mla_absorbed_sm90.h"
#include "ops/mla_absorbed_attention.h"
#include "ops/mla_decode.h"

namespace mlaserve::ops {
namespace {

using sm90::kFusedHeads;
using sm90::kFusedLatent;
using sm90::kFusedMaxGroups;
using sm90::kFusedMaxSeqs;
using sm90::kFusedNope;
using sm90::kFusedRope;
using sm90::kFusedValue;
static_assert(kFusedHeads == kMlaAbsorbedHeadGroup && kFusedHeads * kFusedMaxGroups == kMlaAbsorbedMaxHeads,
              "the contract's head group is the kernel's cluster size");

// G = n / 16 head groups (clusters a sequence) for n heads, or 0 where the kernel takes no n.
int64_t head_groups(int64_t n) {
  return n >= 1 && n % kFusedHeads == 0 && n <= kFusedHeads * kFusedMaxGroups ? n / kFusedHeads : 0;
}

bool is_gpu(const Tensor& t, DType dtype, int ndim) {
  return t.defined() && t.device() == Device::kCUDA && t.dtype() == dtype && t.ndim() == ndim;
}

// Why the fused kernel cannot take these arguments (shapes, dtypes, alignment), or empty.
std::string misfit(const MlaAbsorbedArgs& a, const Tensor& o) {
  if (!is_gpu(a.q, DType::kBF16, 3) || !is_gpu(a.w_kv_b, DType::kBF16, 2) || !is_gpu(a.kv_cache, DType::kBF16, 3) ||
      !is_gpu(o, DType::kBF16, 3) || !is_gpu(a.block_table, DType::kI32, 2) || !is_gpu(a.seq_lens, DType::kI32, 1) ||
      !is_gpu(a.query_start, DType::kI32, 1)) {
    return "q, w_kv_b, kv_cache and o must be BF16 GPU tensors of 3, 2, 3 and 3 dimensions, the tables I32 ones";
  }
  const int64_t t = a.q.dim(0), b = a.seq_lens.dim(0), n = a.q.dim(1);
  if (head_groups(n) == 0) {
    return "q " + shape_str(a.q.shape()) + " has " + std::to_string(n) + " heads, not 16, 32, .. 128";
  }
  if (a.q.shape() != Shape{t, n, kFusedNope + kFusedRope} ||
      a.w_kv_b.shape() != Shape{n * (kFusedNope + kFusedValue), kFusedLatent} || a.kv_cache.dim(1) != kKvBlockSize ||
      a.kv_cache.dim(2) != kCacheRowDim || o.shape() != Shape{t, n, kFusedValue}) {
    return "shapes q " + shape_str(a.q.shape()) + ", w_kv_b " + shape_str(a.w_kv_b.shape()) + ", kv_cache " +
           shape_str(a.kv_cache.shape()) + ", o " + shape_str(o.shape()) +
           " are not [T, n, 192], [n · 256, 512], [*, 64, 576], [T, n, 128]";
  }
  if (t != b || b < 1 || b > kFusedMaxSeqs || a.block_table.dim(0) != b || a.query_start.dim(0) != b + 1) {
    return "one query token a sequence and 1 to 8 sequences, got T = " + std::to_string(t) + ", B = " +
           std::to_string(b) + ", block_table " + shape_str(a.block_table.shape()) + ", query_start " +
           shape_str(a.query_start.shape());
  }
  if (!gpu::aligned16(a.q) || !gpu::aligned16(a.w_kv_b) || !gpu::aligned16(a.kv_cache) || !gpu::aligned16(o)) {
    return "q, w_kv_b, kv_cache and o must be 16-byte aligned";
  }
  if (a.positions.defined() &&
      (!(is_gpu(a.positions, DType::kI32, 1) || is_gpu(a.positions, DType::kI64, 1)) || a.positions.dim(0) != t ||
       !is_gpu(a.cos_sin, DType::kF32, 2) || a.cos_sin.dim(1) != kFusedRope)) {
    return "positions " + shape_str(a.positions.shape()) + " and cos_sin " +
           (a.cos_sin.defined() ? shape_str(a.cos_sin.shape()) : std::string("(none)")) +
           " must be a [T] I32 or I64 and a [P, 64] F32 GPU tensor";
  }
  return {};
}

}  // namespace

int64_t mla_absorbed_attention_cuda_max_seqs(int64_t n_heads) {
  const int64_t groups = head_groups(n_heads);
  return groups == 0 ? 0 : std::min<int64_t>(kFusedMaxSeqs, sm90::absorbed_max_active_clusters() / groups);
}

bool mla_absorbed_attention_cuda_fits(const MlaAbsorbedArgs& args, const Tensor& o) {
  return misfit(args, o).empty() && args.seq_lens.dim(0) <= mla_absorbed_attention_cuda_max_seqs(args.q.dim(1));
}

void mla_absorbed_attention_cuda(const MlaAbsorbedArgs& args, Tensor& o, cudaStream_t stream) {
  const std::string why = misfit(args, o);
  MLA_CHECK(why.empty(), "mla_absorbed_attention_cuda: {}", why);
  MLA_CHECK(std::isfinite(args.softmax_scale) && args.softmax_scale > 0.0f,
            "mla_absorbed_attention_cuda: softmax_scale {} must be positive", args.softmax_scale);
  const bool rope = args.positions.defined();
  const sm90::MlaAbsorbedParams p{gpu::ptr<const __nv_bfloat16>(args.q),
                                  gpu::ptr<const __nv_bfloat16>(args.w_kv_b),
                                  gpu::ptr<const __nv_bfloat16>(args.kv_cache),
                                  gpu::ptr<const int32_t>(args.block_table),
                                  gpu::ptr<const int32_t>(args.seq_lens),
                                  gpu::ptr<__nv_bfloat16>(o),
                                  static_cast<int32_t>(head_groups(args.q.dim(1))),
                                  static_cast<int32_t>(args.block_table.dim(1)),
                                  args.softmax_scale * 1.4426950408889634f,
                                  args.early_loads,
                                  rope ? args.positions.raw() : nullptr,
                                  rope ? gpu::ptr<const float>(args.cos_sin) : nullptr,
                                  rope ? args.cos_sin.dim(0) : 0,
                                  rope && args.positions.dtype() == DType::kI64};
  sm90::launch_mla_absorbed(p, static_cast<int>(args.seq_lens.dim(0)), args.split_heads, stream);
}

}  // namespace mlaserve::ops
