// latent_rows on the GPU (contract: ops/latent_rows.h): kv_a_proj_with_mqa's output -> normalised
// latent, rotated rope key and their cache row, in one kernel.
//
// Design: one CTA of kThreads per token (grid-stride over tokens), memory-bound and tiny (576
// values a token). Pass 1: the CTA sums c² over the dc latent channels in fp32 (thread i takes
// channels i, i + kThreads, ..., in that order; a warp-shuffle then shared-memory reduction, as
// rms_norm.cu). Pass 2: latent = bf16(w · (c · inv_rms)) (rms_norm.cu's order of operations),
// written to `latent` and, when the token has a slot, to the cache row's first dc channels; thread
// i < dr/2 rotates rope pair i in fp32 from the table row of the token's position (rope.cu's
// formula; zeros for a position outside the table) into k_pe and the cache row's last dr channels.
//
// Launched with programmatic dependent launch (pdl.cuh). Before its wait a CTA reads what no
// kernel of the step writes: the norm weight (a weight), and its first token's position, slot and
// cos/sin pair (the step's metadata, copied to the device before its first kernel, and the RoPE
// table). After it, the token's row of ckv is the one trip to memory before the reduction: at
// decode sizes, where this kernel ends the kv branch of an attention layer on a side stream, the
// loads of the slot, the weight, the position and its table row after the wait (three dependent
// trips) made it the branch's longest kernel (H200 traces, bench/NOTES-engine.md, thirty-eighth
// session). Then it lets the next kernel launch.
#include <cuda_bf16.h>

#include <algorithm>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/reduce.cuh"
#include "ops/cuda/rope_pair.cuh"
#include "ops/cuda/vec.cuh"
#include "ops/latent_rows.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "latent_rows_cuda";
constexpr int kThreads = 128;
constexpr int kMaxLatentPerThread = 8;  // dc <= 1024 (DeepSeek's 512: 4 a thread)

struct LatentRowParams {
  const __nv_bfloat16* ckv;   // [T, dc + dr]
  const void* norm_weight;    // [dc] f32 or bf16
  const void* positions;      // [T] i32 or i64
  const float* cos_sin;       // [P, dr]
  const void* slots;          // [T] i32 or i64, or null: no cache write
  __nv_bfloat16* latent;      // [T, dc]
  __nv_bfloat16* k_pe;        // [T, dr]
  __nv_bfloat16* cache;       // [num_slots, dc + dr]
  int64_t tokens, dc, dr, num_positions, num_slots;
  float eps;
  bool weight_bf16, positions_i64, slots_i64;
};

// What a thread needs of token t that no kernel of the step writes: its cache slot (-1: none) and,
// for thread i < dr/2, the angle of rope pair i at the token's position.
struct TokenInputs {
  int64_t slot = -1;
  gpu::RopeAngle angle;  // rope_pair.cuh
};

__device__ __forceinline__ TokenInputs load_token_inputs(const LatentRowParams& p, int64_t t) {
  TokenInputs in;
  if (p.slots != nullptr) in.slot = gpu::load_index(p.slots, p.slots_i64, t);
  const int64_t pairs = p.dr / 2;
  if (threadIdx.x < pairs) {
    const int64_t pos = gpu::load_index(p.positions, p.positions_i64, t);
    in.angle = gpu::rope_angle(p.cos_sin, p.num_positions, pairs, pos, threadIdx.x);
  }
  return in;
}

// grid (min(T, 65535)), block kThreads; launched with launch_programmatic. dc <= kThreads ·
// kMaxLatentPerThread, dr / 2 <= kThreads (latent_rows_cuda checks).
__global__ void __launch_bounds__(kThreads) latent_rows_kernel(LatentRowParams p) {
  __shared__ float scratch[kThreads / 32];
  const int tid = static_cast<int>(threadIdx.x);
  const int64_t row = p.dc + p.dr, pairs = p.dr / 2;
  float w[kMaxLatentPerThread];  // the norm weight of channels tid + kThreads j
#pragma unroll
  for (int j = 0; j < kMaxLatentPerThread; ++j) {
    const int64_t i = tid + int64_t{kThreads} * j;
    w[j] = i >= p.dc                ? 0.0f
           : p.weight_bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(p.norm_weight)[i])
                           : static_cast<const float*>(p.norm_weight)[i];
  }
  TokenInputs in = load_token_inputs(p, blockIdx.x);  // grid <= T
  gpu::grid_dependency_wait();
  gpu::launch_dependents();
  for (int64_t t = blockIdx.x; t < p.tokens; t += gridDim.x) {
    if (t != blockIdx.x) in = load_token_inputs(p, t);
    const __nv_bfloat16* c = p.ckv + t * row;
    float v[kMaxLatentPerThread];
#pragma unroll
    for (int j = 0; j < kMaxLatentPerThread; ++j) {
      const int64_t i = tid + int64_t{kThreads} * j;
      v[j] = i < p.dc ? __bfloat162float(c[i]) : 0.0f;
    }
    float x0 = 0.0f, x1 = 0.0f;  // rope pair tid of the raw key
    if (tid < pairs) {
      x0 = __bfloat162float(c[p.dc + 2 * tid]);
      x1 = __bfloat162float(c[p.dc + 2 * tid + 1]);
    }
    float sum_sq = 0.0f;
#pragma unroll
    for (int j = 0; j < kMaxLatentPerThread; ++j) {
      if (tid + int64_t{kThreads} * j < p.dc) sum_sq += v[j] * v[j];
    }
    const float mean_sq = gpu::block_sum(sum_sq, scratch, kThreads / 32) / static_cast<float>(p.dc);
    const float inv_rms = 1.0f / sqrtf(mean_sq + p.eps);
    __nv_bfloat16* cache_row = in.slot >= 0 && in.slot < p.num_slots ? p.cache + in.slot * row : nullptr;
#pragma unroll
    for (int j = 0; j < kMaxLatentPerThread; ++j) {
      const int64_t i = tid + int64_t{kThreads} * j;
      if (i >= p.dc) continue;
      const __nv_bfloat16 out = __float2bfloat16_rn(w[j] * (v[j] * inv_rms));
      p.latent[t * p.dc + i] = out;
      if (cache_row != nullptr) cache_row[i] = out;
    }
    if (tid < pairs) {
      const __nv_bfloat162 r = gpu::rope_rotate(x0, x1, in.angle);
      const __nv_bfloat16 b0 = r.x, b1 = r.y;
      p.k_pe[t * p.dr + 2 * tid] = b0;
      p.k_pe[t * p.dr + 2 * tid + 1] = b1;
      if (cache_row != nullptr) {
        cache_row[p.dc + 2 * tid] = b0;
        cache_row[p.dc + 2 * tid + 1] = b1;
      }
    }
    __syncthreads();  // scratch is reused by the next token
  }
}

}  // namespace

void latent_rows_cuda(const LatentRowInputs& in, LatentRowOutputs& out, cudaStream_t stream) {
  gpu::check_dtype(kOp, "ckv", in.ckv, DType::kBF16);
  gpu::check_f32_or_bf16(kOp, "norm_weight", in.norm_weight);
  gpu::check_index(kOp, "positions", in.positions);
  gpu::check_dtype(kOp, "cos_sin", in.cos_sin, DType::kF32);
  gpu::check_dtype(kOp, "latent", out.latent, DType::kBF16);
  gpu::check_dtype(kOp, "k_pe", out.k_pe, DType::kBF16);
  MLA_CHECK(in.ckv.ndim() == 2 && out.latent.ndim() == 2 && out.k_pe.ndim() == 2,
            "{}: ckv {}, latent {} and k_pe {} must be 2-D", kOp, shape_str(in.ckv.shape()),
            shape_str(out.latent.shape()), shape_str(out.k_pe.shape()));
  const int64_t t = in.ckv.dim(0), dc = out.latent.dim(1), dr = out.k_pe.dim(1);
  MLA_CHECK(dr % 2 == 0 && in.ckv.dim(1) == dc + dr, "{}: ckv {} must be [T, dc + dr] for dc {} and an even dr {}",
            kOp, shape_str(in.ckv.shape()), dc, dr);
  MLA_CHECK(dc <= kThreads * kMaxLatentPerThread && dr / 2 <= kThreads, "{}: dc {} > {} or dr {} > {}", kOp, dc,
            kThreads * kMaxLatentPerThread, dr, 2 * kThreads);
  gpu::check_shape(kOp, "latent", out.latent, {t, dc});
  gpu::check_shape(kOp, "k_pe", out.k_pe, {t, dr});
  gpu::check_shape(kOp, "norm_weight", in.norm_weight, {dc});
  gpu::check_shape(kOp, "positions", in.positions, {t});
  MLA_CHECK(in.cos_sin.ndim() == 2 && in.cos_sin.dim(1) == dr, "{}: cos_sin {} must be [P, {}]", kOp,
            shape_str(in.cos_sin.shape()), dr);
  const bool write = out.slot_mapping.defined();
  int64_t num_slots = 0;
  if (write) {
    gpu::check_index(kOp, "slot_mapping", out.slot_mapping);
    gpu::check_shape(kOp, "slot_mapping", out.slot_mapping, {t});
    gpu::check_dtype(kOp, "cache", out.cache, DType::kBF16);
    MLA_CHECK(out.cache.ndim() == 3 && out.cache.dim(2) == dc + dr, "{}: cache {} must be [num_blocks, block_size, {}]",
              kOp, shape_str(out.cache.shape()), dc + dr);
    num_slots = out.cache.dim(0) * out.cache.dim(1);
  }
  if (t == 0) return;
  const LatentRowParams p{gpu::ptr<const __nv_bfloat16>(in.ckv),
                          in.norm_weight.raw(),
                          in.positions.raw(),
                          gpu::ptr<const float>(in.cos_sin),
                          write ? out.slot_mapping.raw() : nullptr,
                          gpu::ptr<__nv_bfloat16>(out.latent),
                          gpu::ptr<__nv_bfloat16>(out.k_pe),
                          write ? gpu::ptr<__nv_bfloat16>(out.cache) : nullptr,
                          t,
                          dc,
                          dr,
                          in.cos_sin.dim(0),
                          num_slots,
                          in.eps,
                          in.norm_weight.dtype() == DType::kBF16,
                          in.positions.dtype() == DType::kI64,
                          write && out.slot_mapping.dtype() == DType::kI64};
  gpu::launch_programmatic(latent_rows_kernel, static_cast<unsigned>(std::min<int64_t>(t, 65535)), kThreads, 0, stream, p);
}

}  // namespace mlaserve::ops
