// Block-FP8 W8A8 linear for 1-8 tokens on the tensor cores: the decode path of linear_fp8_cuda /
// linear_fp8_w8a8_cuda (ops/linear_fp8.h) under Fp8GemmKernel::kGemvMma. Launch code in
// linear_fp8_gemv_mma.cu; linear_fp8_heuristics.h says when it runs and how it is cut.
//
//   out[t, o] = Σ_g (Σ_{κ∈g} x_q[t, κ] · w_q[o, κ]) · (x_scale[t, g] · w_scale[o / 128, g])
//
// Why: the CUDA-core GEMV (linear_fp8_gemv.cuh) widens every e4m3 weight code to fp32 once per
// token in every CTA, so from two tokens it is compute-bound (V2-Lite q_proj 3072 x 2048: 4.3 us
// at one token, 5.0 at two, 8.0 at four; the dense gate_up 21888 x 2048: 13.0 / 17.5 / 30.3), and
// the swap-AB wgmma kernel is latency-bound there (4-15 us: TMA set-up, cluster split-K). One
// mma.sync m16n8k32 takes 512 bytes of weight codes for up to 8 tokens with no conversion: the
// cost per weight byte no longer grows with T.
//
// Design: the routed experts' grouped GEMV (moe_experts_gemv.cuh, whose note explains the load
// scheme, the ring and the reduction; shared device code in gemv_mma.cuh) over one dense weight:
//   - the weight [N, K] is cut into ceil(N / 16) tiles of 16 rows; grid C CTAs (GemvMmaConfig,
//     gemv_mma_ctas: about ctas_per_sm x SMs), CTA x owns tiles [x·tiles / C, (x + 1)·tiles / C);
//   - a piece is a tile's 128-byte unit = one 128-wide K group of its 16 rows; the run's pieces go
//     to the 8 warps round robin, each warp keeps a ring of kDepth pieces (and their weight scale:
//     one per piece, the tile's 16 rows lie in one 128-row scale block) in flight in registers;
//   - the T <= 8 activation rows are staged in shared memory once per CTA, as e4m3 codes (K
//     rounded up to 128, + 64 bytes of pad apart) and scales [T][G] (Fp8GemvInput): quantised
//     there from bf16 x (kBf16: quantize_rows_e4m3, bit-identical to
//     quantize_activations_fp8_cuda), or from the SwiGLU of an MLP's gate_up rows (kSwiGlu:
//     stage_swiglu_rows, bit-identical to silu_mul_quantize_fp8_cuda), or copied from x_q and
//     x_scales (kCodes);
//   - each piece: 4 mma steps into a fresh fp32 tile (A = the 16 weight rows, B = the 8 staged
//     activation rows, zeros past T), then acc += part · (x_scale · w_scale), as the reference;
//   - the warps' fp32 tiles go through shared memory and are summed in warp order (deterministic
//     for a given grid); lane (g, t) writes rows g and g + 8 of a tile for tokens 2t and 2t + 1,
//     bf16 rounded once or f32.
// Edges: N any (rows past N load row N - 1 and are never stored); K a multiple of 16 with a partial
// last group (V2-Lite's 10944 = 85.5 x 128): a lane's 16-byte vector of a k-block lies wholly
// inside or outside K, and outside it both operands are zero (no weight byte past the row is
// read). Every output [t < T, o < N] is written exactly once.
//
// Numerics against linear_fp8_w8a8_cpu: the same e4m3 products (exact) and fp32 scale products,
// but the tensor cores sum a group's 128 products in their own order with ~fp22 partial sums
// (products of two e4m3 values are exact, their sums are not), so not bit for bit equal to the
// reference or to the CUDA-core GEMV (which sums 16 products a lane in fp32 and scales each 16):
// ~1e-4 of the row's magnitude, under the bf16 output rounding (linear_fp8_cuda_test's bounds).
//
// Programmatic dependent launch (pdl.cuh): the ring's first pieces (weights and their scales) are
// loaded before grid_dependency_wait(); x, x_q and x_scales, which the kernel before may write,
// only after it. Every CTA waits, then lets the next kernel launch.
//
// kSwiGlu is the down projection of an MLP at one token in one launch instead of two (the
// SwiGLU quantiser, then this GEMV on its codes): at one token each of those is a few-us kernel
// in the step's chain, and the shared experts' branch, which runs beside the routed experts on
// the side stream, waited twice for SMs the routed GEMVs held (bench/NOTES-engine.md, s62).
// Every CTA recomputes the T·K SwiGLU values, ~1.4 us at one token of K = 2816, which is where
// this form is taken (linear_fp8_heuristics.h, gemv_mma_takes_swiglu).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/gemv_mma.cuh"
#include "ops/cuda/linear_fp8_gemv.cuh"  // Fp8GemvParams
#include "ops/cuda/linear_fp8_gemv.h"    // Fp8GemvInput
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/sm80_ptx.cuh"  // cp_async_16, cp_async_4

namespace mlaserve::ops::gpu {

inline constexpr int kFp8GemvMmaMaxTokens = kGemvMmaRows;      // 8: the mma's N
inline constexpr int kFp8GemvMmaTileRows = kGemvMmaTileRows;  // weight rows a tile: the mma's M (16)
static_assert(128 % kFp8GemvMmaTileRows == 0, "a tile's rows lie in one 128-row scale block");

template <typename OutT>
struct Fp8GemvMmaParams {
  Fp8GemvParams<OutT> op;     // operands and sizes, as the CUDA-core GEMV's (t <= 8 here)
  int32_t tiles;              // 16-row weight tiles: ceil(N / 16)
  int32_t max_tiles_per_cta;  // ceil(tiles / gridDim.x): the partial sums' shared memory
};

// Dynamic shared memory, in order: activation scales [T][G] f32 (rounded up to 16 bytes); T
// staged activation rows of e4m3 codes, fp8_gemv_mma_act_stride bytes apart (G·128 + 64: rows g
// and g + 1, read by one quarter warp, in different banks); partial sums [max_tiles][8 warps][32
// lanes] float4; with kSwiGlu, the T bf16 gate_up rows [T][2K] (fp8_gemv_mma_staged_bytes).
__host__ __device__ inline constexpr int64_t fp8_gemv_mma_act_stride(int64_t k) {
  return (k + 127) / 128 * 128 + kGemvMmaActPad;
}
__host__ __device__ inline constexpr int64_t fp8_gemv_mma_scale_bytes(int64_t k, int64_t t) {
  return (t * ((k + 127) / 128) * 4 + 15) / 16 * 16;
}
__host__ __device__ inline constexpr int64_t fp8_gemv_mma_act_bytes(int64_t k, int64_t t) {
  return fp8_gemv_mma_scale_bytes(k, t) + t * fp8_gemv_mma_act_stride(k);
}
// What the staged rows take in all: their codes and scales, and with kSwiGlu the bf16 gate_up rows
// they are computed from.
__host__ __device__ inline constexpr int64_t fp8_gemv_mma_staged_bytes(int64_t k, int64_t t, bool swiglu) {
  return fp8_gemv_mma_act_bytes(k, t) + (swiglu ? t * 2 * k * 2 : 0);
}
__host__ __device__ inline constexpr int64_t fp8_gemv_mma_smem_bytes(int64_t k, int64_t t, int64_t max_tiles,
                                                                     bool swiglu = false) {
  return fp8_gemv_mma_staged_bytes(k, t, swiglu) + max_tiles * kGemvMmaPartialBytes;
}

// Rows [0, t) of x_q (e4m3, [T, K]) and x_scales ([T, G]) copied into shared memory: codes of row j
// at codes + j · code_stride, scales as they are. Every thread of the CTA calls it; 16-byte chunks
// (K is a multiple of 16) by cp.async, which the kernel's ring of weight loads never delays: loads
// into registers here would share a scoreboard with that ring (issued first, before the grid
// dependency wait), and the first wait on them would wait for the whole ring too.
__device__ __forceinline__ void stage_fp8_rows(const uint8_t* x_q, const float* x_scales, int k, int groups, int t,
                                               float* scales, uint8_t* codes, int code_stride) {
  const int chunks = k / 16, total = t * chunks;
  for (int i = static_cast<int>(threadIdx.x); i < total; i += kGemvMmaThreads) {
    const int j = i / chunks, c = i - j * chunks;
    sm80::cp_async_16(sm80::smem_u32(codes + j * code_stride + 16 * c), x_q + int64_t{j} * k + 16 * c, true);
  }
  for (int i = static_cast<int>(threadIdx.x); i < t * groups; i += kGemvMmaThreads) {
    sm80::cp_async_4(sm80::smem_u32(scales + i), x_scales + i, true);
  }
  sm80::cp_async_commit();
  sm80::cp_async_wait<0>();
}

// Rows [0, t) of gate_up ([T, 2K] bf16: gate [0, K), up [K, 2K)) as the down projection's input
// silu(gate)·up, quantised per 128-wide group into shared memory as silu_mul_quantize_fp8_cuda
// quantises it (silu_mul_exact in fp32, then fp8_quant.cuh's arithmetic: the same bits): codes of
// row j at codes + j · code_stride (none past K), scales[j · groups + group]. The bf16 rows are
// first copied whole into `staged` ([T][2K]) by cp.async, as stage_fp8_rows copies codes (no
// loads into registers behind the ring's); then half-warps take the (row, group) tasks, 8 values
// a lane, as quantize_rows_e4m3's. K a multiple of 16. Every thread of the CTA calls it; the
// caller's __syncthreads makes the codes visible.
__device__ __forceinline__ void stage_swiglu_rows(const __nv_bfloat16* gate_up, int k, int t, float amax_floor,
                                                  bool ue8m0, __nv_bfloat16* staged, float* scales, uint8_t* codes,
                                                  int code_stride) {
  const int total = t * 2 * k / 8;  // 16-byte chunks: the rows lie back to back in both places
  for (int i = static_cast<int>(threadIdx.x); i < total; i += kGemvMmaThreads) {
    sm80::cp_async_16(sm80::smem_u32(staged + 8 * i), gate_up + int64_t{8} * i, true);
  }
  sm80::cp_async_commit();
  sm80::cp_async_wait<0>();
  __syncthreads();
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int half = lane / 16, l16 = lane % 16;
  const int groups = (k + 127) / 128, tasks = t * groups;
  for (int task = 2 * warp + half; task - half < tasks; task += 2 * kGemvMmaWarps) {  // warp-uniform trip count
    const int j = task / groups, q = task - j * groups, c = q * 128 + 8 * l16;
    const bool in_k = task < tasks && c < k;
    float v[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};  // lanes past K: zeros, as the quantiser's
    if (in_k) {
      float up[8];
      unpack_bf16x8(*reinterpret_cast<const uint4*>(staged + int64_t{j} * 2 * k + c), v);
      unpack_bf16x8(*reinterpret_cast<const uint4*>(staged + int64_t{j} * 2 * k + k + c), up);
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = silu_mul_exact(v[i], up[i]);
    }
    const float scale = group_act_scale<16, 8>(v, amax_floor, ue8m0);  // the half-warp's group
    const uint2 q8 = quantize_e4m3x8(v, scale);
    if (in_k) *reinterpret_cast<uint2*>(codes + j * code_stride + c) = q8;
    if (task < tasks && l16 == 0) scales[j * groups + q] = scale;
  }
}

// grid gemv_mma_ctas(tiles, 1, config, SMs), block kGemvMmaThreads, dynamic shared memory
// fp8_gemv_mma_smem_bytes(K, T, p.max_tiles_per_cta, kInput == kSwiGlu); launched with
// launch_programmatic.
template <int kDepth, sm90_fp8::Fp8GemvInput kInput, typename OutT>
__global__ void __launch_bounds__(kGemvMmaThreads, gemv_mma_min_ctas_per_sm(kDepth))
    linear_fp8_gemv_mma_kernel(const Fp8GemvMmaParams<OutT> p) {
  static_assert(kDepth >= 1 && kDepth <= 8, "ring depth");
  extern __shared__ __align__(16) uint8_t smem[];  // see fp8_gemv_mma_smem_bytes
  const Fp8GemvParams<OutT>& op = p.op;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, t = lane % 4;
  const int units = op.groups;  // pieces a tile: one per K group

  // This CTA's run: tiles [tile0, tile0 + n_tiles).
  const GemvMmaRun run(p.tiles, units);
  const int tile0 = run.tile0, n_tiles = run.n_tiles, my_pieces = run.my_pieces;

  // Whether this lane's 16 bytes of k-block kb of unit u lie inside K (all or none: K % 16 == 0).
  const auto in_k = [&](int u, int kb) { return u * kGemvMmaUnitBytes + kb * 64 + 16 * t < op.k; };

  uint4 ring[kDepth][2][2];  // [piece][k-block][row g, row g + 8], this lane's 16 bytes of each
  float ring_ws[kDepth];     // the piece's weight scale (both rows: one 128-row block)
  const auto load_piece = [&](int s, const GemvMmaPos& at) {
    load_weight_piece(ring[s], op.w, op.k, op.n, (tile0 + at.tile) * kFp8GemvMmaTileRows + g, at.unit, t);
    const int block = (tile0 + at.tile) * kFp8GemvMmaTileRows / 128;
    ring_ws[s] = __ldg(op.w_scales + int64_t{block} * units + at.unit);
  };
  GemvMmaPos start{0, warp};
  start.normalise(units);
  GemvMmaPos load_at = start;
  gemv_mma_fill_ring<kDepth>(my_pieces, units, load_at, load_piece);  // weights only, before the wait
  grid_dependency_wait();
  launch_dependents();

  float* act_scales = reinterpret_cast<float*>(smem);  // [T][G]
  uint8_t* acts = smem + fp8_gemv_mma_scale_bytes(op.k, op.t);
  const int act_stride = static_cast<int>(fp8_gemv_mma_act_stride(op.k));
  float4* partial = reinterpret_cast<float4*>(acts + int64_t{op.t} * act_stride);  // [max_tiles][warps][32]
  const auto store_partial = [&](int tile, float4 v) { partial[(tile * kGemvMmaWarps + warp) * 32 + lane] = v; };

  if constexpr (kInput == sm90_fp8::Fp8GemvInput::kBf16) {
    quantize_rows_e4m3<2, true>(op.x, op.k, op.amax_floor, op.ue8m0, 0, op.t, act_scales, acts, act_stride);
  } else if constexpr (kInput == sm90_fp8::Fp8GemvInput::kSwiGlu) {
    auto* staged = reinterpret_cast<__nv_bfloat16*>(reinterpret_cast<uint8_t*>(partial) +
                                                    int64_t{p.max_tiles_per_cta} * kGemvMmaPartialBytes);
    stage_swiglu_rows(op.x, op.k, op.t, op.amax_floor, op.ue8m0, staged, act_scales, acts, act_stride);
  } else {
    stage_fp8_rows(op.x_q, op.x_scales, op.k, units, op.t, act_scales, acts, act_stride);
  }
  __syncthreads();

  // The stream: consume ring slot s, refill it with the piece kDepth further on.
  const bool has_row = g < op.t;  // activation row g (B column g)
  const uint8_t* act_row = acts + (has_row ? g : 0) * act_stride + 16 * t;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // D: (row g; tokens 2t, 2t + 1), (row g + 8; the same)
  int cur_tile = 0;                         // the tile acc belongs to
  GemvMmaPos use_at = start;
  for (int j0 = 0; j0 < my_pieces; j0 += kDepth) {
#pragma unroll
    for (int s = 0; s < kDepth; ++s) {
      if (j0 + s >= my_pieces) break;  // warp-uniform
      if (use_at.tile != cur_tile) {   // warp-uniform: acc is complete for cur_tile
        store_partial(cur_tile, make_float4(acc[0], acc[1], acc[2], acc[3]));
        for (int x = cur_tile + 1; x < use_at.tile; ++x) store_partial(x, make_float4(0.0f, 0.0f, 0.0f, 0.0f));
        cur_tile = use_at.tile;
        acc[0] = acc[1] = acc[2] = acc[3] = 0.0f;
      }
      const int u = use_at.unit;
      const float as0 = 2 * t < op.t ? act_scales[2 * t * units + u] : 0.0f;
      const float as1 = 2 * t + 1 < op.t ? act_scales[(2 * t + 1) * units + u] : 0.0f;
      float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // this group's sums
#pragma unroll
      for (int kb = 0; kb < 2; ++kb) {
        const uint4 codes = has_row && in_k(u, kb)
                                ? *reinterpret_cast<const uint4*>(act_row + u * kGemvMmaUnitBytes + kb * 64)
                                : make_uint4(0, 0, 0, 0);
        mma_k_block<true>(part, ring[s][kb][0], ring[s][kb][1], codes);
      }
      const float ws = ring_ws[s];
      acc[0] += part[0] * (as0 * ws);
      acc[1] += part[1] * (as1 * ws);
      acc[2] += part[2] * (as0 * ws);
      acc[3] += part[3] * (as1 * ws);
      use_at.advance(units);
      if (j0 + s + kDepth < my_pieces) {
        load_piece(s, load_at);
        load_at.advance(units);
      }
    }
  }
  // A warp with no piece stores zeros for tile 0.
  store_partial(cur_tile, make_float4(acc[0], acc[1], acc[2], acc[3]));
  for (int x = cur_tile + 1; x < n_tiles; ++x) store_partial(x, make_float4(0.0f, 0.0f, 0.0f, 0.0f));
  __syncthreads();

  // The sum over the warps (in order); lane (g, t) has tokens 2t and 2t + 1 of the tile's weight
  // rows g and g + 8.
  for (int tile = warp; tile < n_tiles; tile += kGemvMmaWarps) {
    float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int w = 0; w < kGemvMmaWarps; ++w) {
      const float4 v = partial[(tile * kGemvMmaWarps + w) * 32 + lane];
      sum[0] += v.x;
      sum[1] += v.y;
      sum[2] += v.z;
      sum[3] += v.w;
    }
    const int row = (tile0 + tile) * kFp8GemvMmaTileRows + g;
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const int token = 2 * t + c;
      if (token >= op.t) continue;
      OutT* out_row = op.out + int64_t{token} * op.n;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if (row + 8 * h >= op.n) continue;
        if constexpr (sizeof(OutT) == 2) {
          out_row[row + 8 * h] = __float2bfloat16_rn(sum[2 * h + c]);
        } else {
          out_row[row + 8 * h] = sum[2 * h + c];
        }
      }
    }
  }
}

}  // namespace mlaserve::ops::gpu
