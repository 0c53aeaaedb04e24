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
// With an FP8 output (kQuantize) dv is 128, one vector a lane, and the row's half-warp quantises
// the bf16 values it would store (fp8_quant.cuh's arithmetic: the amax over the 16 lanes) and
// writes their codes instead.
#include <cuda_bf16.h>

#include <cmath>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/fp8_quant.cuh"
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
  uint8_t* out_q;              // [rows, 128] e4m3, written instead of out (AttentionFp8Output), or null
  float* out_scales;           // [rows]
  float amax_floor;
  bool ue8m0;
  int64_t rows;                // T * n
  int64_t dv;
};

// acc = wa · out_a[r] + wb · out_b[r] over channels [c0, c0 + kVec), in fp32; a side with a zero
// weight is not read.
template <int kVec>
__device__ __forceinline__ void merge_vector(const MergeStatesParams& p, int64_t r, int64_t c0, float wa, float wb,
                                             float (&acc)[kVec]) {
  float x[kVec];
  gpu::fill_vec<kVec>(acc, 0.0f);
  if (wa != 0.0f) {
    gpu::load_vec<kVec>(p.out_a + r * p.dv + c0, x);
#pragma unroll
    for (int i = 0; i < kVec; ++i) acc[i] = wa * x[i];
  }
  if (wb != 0.0f) {
    gpu::load_vec<kVec>(p.out_b + r * p.dv + c0, x);
#pragma unroll
    for (int i = 0; i < kVec; ++i) acc[i] += wb * x[i];
  }
}

template <int kVec, bool kQuantize>
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
    if constexpr (kQuantize) {  // dv = 128: channels 8 lane .. 8 lane + 7; every lane (shuffles)
      float acc[kVec];
      if (active) {
        merge_vector<kVec>(p, r, lane * kVec, wa, wb, acc);
      } else {
        gpu::fill_vec<kVec>(acc, 0.0f);
      }
#pragma unroll
      for (int i = 0; i < kVec; ++i) acc[i] = __bfloat162float(__float2bfloat16_rn(acc[i]));  // as stored
      const float scale = gpu::group_act_scale<kLanesPerRow, kVec>(acc, p.amax_floor, p.ue8m0);
      if (active) {
        *reinterpret_cast<uint2*>(p.out_q + r * p.dv + lane * kVec) = gpu::quantize_e4m3x8(acc, scale);
        if (lane == 0) p.out_scales[r] = scale;
      }
    } else {
      for (int64_t c = lane; active && c < vectors; c += kLanesPerRow) {
        float acc[kVec];
        merge_vector<kVec>(p, r, c * kVec, wa, wb, acc);
        gpu::store_vec<kVec>(p.out + r * p.dv + c * kVec, acc);
      }
    }
    __syncwarp();  // every lane has read lse_a[r] and lse_b[r] before lse[r] (maybe the same) changes
    if (active && lane == 0) p.lse[r] = merged_lse;
  }
}

}  // namespace

void merge_attention_states_cuda(const AttentionState& a, const AttentionState& b, AttentionState& merged,
                                 const AttentionFp8Output& merged_q, cudaStream_t stream) {
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
  MergeStatesParams p{gpu::ptr<const __nv_bfloat16>(a.out), gpu::ptr<const __nv_bfloat16>(b.out),
                      gpu::ptr<const float>(a.lse),         gpu::ptr<const float>(b.lse),
                      gpu::ptr<__nv_bfloat16>(merged.out),  gpu::ptr<float>(merged.lse),
                      nullptr,                              nullptr,
                      0.0f,                                 false,
                      t * n,                                dv};
  const bool vec8 = dv % 8 == 0 && gpu::aligned16(a.out) && gpu::aligned16(b.out) && gpu::aligned16(merged.out);
  if (merged_q.defined()) {
    check_attention_fp8_output(kOp, merged_q, merged.out);
    MLA_CHECK(vec8 && gpu::aligned16(merged_q.q.x_q), "{}: an FP8 output needs 16-byte aligned outs and codes", kOp);
    p.out_q = gpu::ptr<uint8_t>(merged_q.q.x_q);
    p.out_scales = gpu::ptr<float>(merged_q.q.scales);
    p.amax_floor = merged_q.params.amax_floor;
    p.ue8m0 = merged_q.params.scale_format == Fp8ScaleFormat::kUE8M0;
  }
  if (p.rows == 0) return;
  const unsigned blocks = gpu::grid_blocks(p.rows, kThreads / 32 * kRowsPerWarp);
  if (merged_q.defined()) {
    merge_attention_states_kernel<8, true><<<blocks, kThreads, 0, stream>>>(p);
  } else if (vec8) {
    merge_attention_states_kernel<8, false><<<blocks, kThreads, 0, stream>>>(p);
  } else {
    merge_attention_states_kernel<1, false><<<blocks, kThreads, 0, stream>>>(p);
  }
  MLA_CUDA_CHECK_LAUNCH();
}

}  // namespace mlaserve::ops
