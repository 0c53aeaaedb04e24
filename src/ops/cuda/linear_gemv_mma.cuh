// bf16 linear for up to 8 tokens on the tensor cores: a GEMV path of linear_cuda (ops/linear.h) under
// GemvKernel::kTensorCore (kAuto from 4 tokens: linear_gemv.h; launch code in linear_gemv_mma.cu).
//
//   out[t, o] = Σ_κ x[t, κ] · w[o, κ]      x [T, K] bf16, w [N, K] bf16, out [T, N] bf16 or f32
//
// Why: the CUDA-core GEMV (linear_gemv.cuh) widens every weight value to fp32 and does T FMAs with
// it, so past one token it is compute-bound: at 8 tokens it reaches 0.24-0.39 of copy bandwidth on
// an H200 (V2-Lite q_proj 3072 x 2048: 9.8 us; the dense gate_up 21888 x 2048: 62 us), against
// 0.73-0.95 at one. One mma.sync m16n8k16 takes 16 weight rows x 16 values for up to 8 tokens with
// no conversion: the cost per weight byte no longer grows with T (the block-FP8 GEMV on the tensor
// cores took q_proj at 8 tokens from 8.9 to 4.0 us, linear_fp8_gemv_mma.cuh).
//
// Design: the dense block-FP8 tensor-core GEMV's (linear_fp8_gemv_mma.cuh, whose note has the
// details; shared device code in gemv_mma.cuh) without scales, on bf16:
//   - the weight [N, K] is cut into ceil(N / 16) tiles of 16 rows; grid C CTAs (GemvMmaConfig,
//     gemv_mma_ctas: about ctas_per_sm x SMs), CTA x owns tiles [x·tiles / C, (x + 1)·tiles / C);
//   - a piece is a tile's 128-byte unit: 64 K values of its 16 rows, ceil(K / 64) pieces a tile;
//     the run's pieces go to the 8 warps round robin, each warp keeps a ring of kDepth pieces in
//     flight in registers (16 registers a piece), loaded with streaming 16-byte loads;
//   - the T <= 8 rows of x are copied into shared memory once per CTA by cp.async, all in flight
//     at once (bf16, rows linear_gemv_mma_act_stride bytes apart);
//   - each piece: 4 mma steps (m16n8k16, A = the 16 weight rows, B = the 8 staged rows, zeros
//     past T, D fp32) straight into the warp's accumulator of the current tile;
//   - the warps' fp32 tiles go through shared memory and are summed in warp order (deterministic
//     for a given grid); lane (g, t) writes rows g and g + 8 of a tile for tokens 2t and 2t + 1,
//     bf16 rounded once or f32 (gemv_mma_store_tiles).
// Edges: N any (rows past N load row N - 1 and are never stored); K a multiple of 8 (as the CUDA-
// core GEMV: linear_gemv_applies), with a partial last piece: a lane's 16-byte vector (8 values)
// lies wholly inside or outside K, and outside it both operands are zero (no weight byte past the
// row is read). K is limited by the staged rows (T · (2K + 64) bytes, about 227 KB: K <= ~14k at 8
// tokens; V3's o_proj, K = 16384, fits up to 6): linear_gemv_mma_fits. Every output [t < T, o < N]
// is written exactly once.
//
// Numerics: products of two bf16 are exact in fp32; the tensor cores add them in their own order
// and grouping, in fp32 (not bit for bit the CUDA-core GEMV's order, which
// tests/ops/cuda/gemv_kernel_order.h reproduces), ~sqrt(K) · 2^-24 relative to the row's
// magnitude, well under the bf16 output rounding (2^-9).
//
// Programmatic dependent launch (pdl.cuh): the ring's first pieces (weights only) are loaded
// before grid_dependency_wait(); x, which the kernel before may write, only after it. Every CTA
// waits, then lets the next kernel launch.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/gemv_mma.cuh"
#include "ops/cuda/linear_gemv.cuh"  // GemvParams
#include "ops/cuda/pdl.cuh"

namespace mlaserve::ops::gpu {

inline constexpr int kGemvMmaMaxTokens = kGemvMmaRows;  // 8: the mma's N
static_assert(kGemvMmaMaxTokens == kGemvMaxTokens, "both GEMVs take the decode batches up to 8 tokens");

template <typename OutT>
struct Bf16GemvMmaParams {
  GemvParams<OutT> op;        // operands and sizes, as the CUDA-core GEMV's (T <= 8, K % 8 == 0)
  int32_t tiles;              // 16-row weight tiles: ceil(N / 16)
  int32_t max_tiles_per_cta;  // ceil(tiles / gridDim.x): the partial sums' shared memory
};

// Dynamic shared memory, in order: T staged rows of x, linear_gemv_mma_act_stride bytes apart
// (2K rounded up to 128, + 64: rows g and g + 1, read by one quarter warp, fall in different
// banks); partial sums [max_tiles][8 warps][32 lanes] float4.
__host__ __device__ inline constexpr int64_t linear_gemv_mma_act_stride(int64_t k) {
  return (2 * k + 127) / 128 * 128 + kGemvMmaActPad;
}
__host__ __device__ inline constexpr int64_t linear_gemv_mma_act_bytes(int64_t k, int64_t t) {
  return t * linear_gemv_mma_act_stride(k);
}
__host__ __device__ inline constexpr int64_t linear_gemv_mma_smem_bytes(int64_t k, int64_t t, int64_t max_tiles) {
  return linear_gemv_mma_act_bytes(k, t) + max_tiles * kGemvMmaPartialBytes;
}

// grid gemv_mma_ctas(tiles, 1, config, SMs), block kGemvMmaThreads, dynamic shared memory
// linear_gemv_mma_smem_bytes(K, T, p.max_tiles_per_cta); launched with launch_programmatic.
template <int kDepth, typename OutT>
__global__ void __launch_bounds__(kGemvMmaThreads, gemv_mma_min_ctas_per_sm(kDepth))
    linear_gemv_mma_bf16_kernel(const Bf16GemvMmaParams<OutT> p) {
  static_assert(kDepth >= 1 && kDepth <= 8, "ring depth");
  extern __shared__ __align__(16) uint8_t smem[];  // see linear_gemv_mma_smem_bytes
  const GemvParams<OutT>& op = p.op;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, t = lane % 4;
  const int row_bytes = 2 * op.k;  // of a weight row (and of a row of x)
  const int units = (row_bytes + kGemvMmaUnitBytes - 1) / kGemvMmaUnitBytes;  // pieces a tile

  // This CTA's run: tiles [tile0, tile0 + n_tiles).
  const GemvMmaRun run(p.tiles, units);
  const int tile0 = run.tile0, n_tiles = run.n_tiles, my_pieces = run.my_pieces;

  const uint8_t* w = reinterpret_cast<const uint8_t*>(op.w);
  uint4 ring[kDepth][2][2];  // [piece][k-block][row g, row g + 8], this lane's 16 bytes of each
  const auto load_piece = [&](int s, const GemvMmaPos& at) {
    load_weight_piece(ring[s], w, row_bytes, op.n, (tile0 + at.tile) * kGemvMmaTileRows + g, at.unit, t);
  };
  GemvMmaPos start{0, warp};
  start.normalise(units);
  GemvMmaPos load_at = start;
  gemv_mma_fill_ring<kDepth>(my_pieces, units, load_at, load_piece);  // weights only, before the wait
  grid_dependency_wait();
  launch_dependents();

  uint8_t* acts = smem;  // [T] rows of x, act_stride bytes apart
  const int act_stride = static_cast<int>(linear_gemv_mma_act_stride(op.k));
  float4* partial = reinterpret_cast<float4*>(acts + int64_t{op.t} * act_stride);  // [max_tiles][warps][32]
  const auto store_partial = [&](int tile, float4 v) { partial[(tile * kGemvMmaWarps + warp) * 32 + lane] = v; };
  stage_rows_bf16_async(op.x, op.k, op.t, acts, act_stride);
  __syncthreads();

  // The stream: each piece's two 64-byte k-blocks, two mma steps each, into the tile's acc.
  const bool has_row = g < op.t;  // row g of x (B column g)
  const uint8_t* act_row = acts + (has_row ? g : 0) * act_stride + 16 * t;
  const auto consume = [&](int s, int u, float (&acc)[4]) {
#pragma unroll
    for (int kb = 0; kb < 2; ++kb) {
      const int col = u * kGemvMmaUnitBytes + kb * 64;  // + 16 t: this lane's vector
      const uint4 av = has_row && col + 16 * t < row_bytes ? *reinterpret_cast<const uint4*>(act_row + col)
                                                           : make_uint4(0, 0, 0, 0);
      mma_k_block<false>(acc, ring[s][kb][0], ring[s][kb][1], av);
    }
  };
  gemv_mma_stream<kDepth>(my_pieces, units, n_tiles, start, load_at, load_piece, consume, store_partial);
  __syncthreads();
  gemv_mma_store_tiles(partial, tile0, n_tiles, op.out, op.t, op.n);
}

}  // namespace mlaserve::ops::gpu
