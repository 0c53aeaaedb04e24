// merge_attention_states on the GPU (contract: ops/merge_attention_states.h): bf16 outputs, fp32
// log-sum-exp, merged by
//   m = max(lse_a, lse_b),  e_x = exp(lse_x - m),  lse = m + log(e_a + e_b)
//   out = (e_a / (e_a + e_b)) · out_a + (e_b / (e_a + e_b)) · out_b
// with a side whose lse is -inf contributing nothing (its out is not even read), and two empty
// sides giving out = 0, lse = -inf.
//
// Design: half a warp (16 lanes) per (token, head) row; every lane computes the two weights from
// the row's two lse values (cheap, no communication), then 8 channels per 16-byte vector: a
// 128-channel row is one vector per lane. Arithmetic in fp32, out rounded once to bf16. In place
// (merged may be a or b): each out element is read and written by the same lane, and the row's
// lse is written by its first lane only after __syncwarp(), when all 16 lanes have read the old
// values. The loop runs per warp (pairs of rows), so __syncwarp() is never divergent.
#include <cuda_bf16.h>

#include <cmath>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/vec.cuh"
#include "ops/merge_attention_states.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "merge_attention_states_cuda";
constexpr int kThreads = 256;
constexpr int kLanesPerRow = 16;
constexpr int kRowsPerWarp = 32 / kLanesPerRow;

struct MergeStatesParams {
  const __nv_bfloat16* out_a;  // [rows, dv]
  const __nv_bfloat16* out_b;  // [rows, dv]
  const float* lse_a;          // [rows]
  const float* lse_b;          // [rows]
  __nv_bfloat16* out;          // [rows, dv], may be out_a or out_b
  float* lse;                  // [rows], may be lse_a or lse_b
  int64_t rows;                // T * n
  int64_t dv;
};

template <int kVec>
__global__ void __launch_bounds__(kThreads) merge_attention_states_kernel(MergeStatesParams p) {
  const int lane = threadIdx.x % kLanesPerRow, half = (threadIdx.x % 32) / kLanesPerRow;
  const int64_t warps = int64_t{gridDim.x} * (blockDim.x / 32);
  const int64_t vectors = p.dv / kVec;
  for (int64_t w = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32; w * kRowsPerWarp < p.rows; w += warps) {
    const int64_t r = w * kRowsPerWarp + half;
    const bool active = r < p.rows;
    const float la = active ? p.lse_a[r] : -INFINITY, lb = active ? p.lse_b[r] : -INFINITY;
    const float m = fmaxf(la, lb);
    float wa = 0.0f, wb = 0.0f, merged_lse = -INFINITY;
    if (m != -INFINITY) {
      const float ea = expf(la - m), eb = expf(lb - m), sum = ea + eb;
      wa = ea / sum;
      wb = eb / sum;
      merged_lse = m + logf(sum);
    }
    for (int64_t c = lane; active && c < vectors; c += kLanesPerRow) {
      float acc[kVec], x[kVec];
      gpu::fill_vec<kVec>(acc, 0.0f);
      if (wa != 0.0f) {
        gpu::load_vec<kVec>(p.out_a + r * p.dv + c * kVec, x);
#pragma unroll
        for (int i = 0; i < kVec; ++i) acc[i] = wa * x[i];
      }
      if (wb != 0.0f) {
        gpu::load_vec<kVec>(p.out_b + r * p.dv + c * kVec, x);
#pragma unroll
        for (int i = 0; i < kVec; ++i) acc[i] += wb * x[i];
      }
      gpu::store_vec<kVec>(p.out + r * p.dv + c * kVec, acc);
    }
    __syncwarp();  // every lane has read lse_a[r] and lse_b[r] before lse[r] (maybe the same) changes
    if (active && lane == 0) p.lse[r] = merged_lse;
  }
}

}  // namespace

void merge_attention_states_cuda(const AttentionState& a, const AttentionState& b, AttentionState& merged,
                                 cudaStream_t stream) {
  const AttentionState* states[] = {&a, &b, &merged};
  for (const AttentionState* s : states) {
    gpu::check_dtype(kOp, "out", s->out, DType::kBF16);
    gpu::check_dtype(kOp, "lse", s->lse, DType::kF32);
  }
  MLA_CHECK(a.out.ndim() == 3, "{}: out {} must be [T, n, dv]", kOp, shape_str(a.out.shape()));
  const int64_t t = a.out.dim(0), n = a.out.dim(1), dv = a.out.dim(2);
  for (const AttentionState* s : states) {
    gpu::check_shape(kOp, "out", s->out, a.out.shape());
    gpu::check_shape(kOp, "lse", s->lse, {t, n});
  }
  const MergeStatesParams p{gpu::ptr<const __nv_bfloat16>(a.out), gpu::ptr<const __nv_bfloat16>(b.out),
                            gpu::ptr<const float>(a.lse),         gpu::ptr<const float>(b.lse),
                            gpu::ptr<__nv_bfloat16>(merged.out),  gpu::ptr<float>(merged.lse),
                            t * n,                                dv};
  if (p.rows == 0) return;
  const unsigned blocks = gpu::grid_blocks(p.rows, kThreads / 32 * kRowsPerWarp);
  if (dv % 8 == 0 && gpu::aligned16(a.out) && gpu::aligned16(b.out) && gpu::aligned16(merged.out)) {
    merge_attention_states_kernel<8><<<blocks, kThreads, 0, stream>>>(p);
  } else {
    merge_attention_states_kernel<1><<<blocks, kThreads, 0, stream>>>(p);
  }
  MLA_CUDA_CHECK_LAUNCH();
}

}  // namespace mlaserve::ops
