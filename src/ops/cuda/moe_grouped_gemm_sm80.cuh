// Grouped BF16 GEMM over the routed experts of a MoE layer: device code. Contract:
// ops/moe_experts.h (moe_experts_cuda); launch code in moe_grouped_gemm_sm80.cu, tile choice in
// moe_grouped_gemm_sm80_heuristics.h, parameters in moe_grouped_gemm_sm80_params.h.
//
// Symbols: P gathered rows (T·k), E experts, H hidden, Im expert intermediate; rows are in
// expert order, expert e owning rows [offsets[e], offsets[e+1]) with offsets in device memory.
//
// Why this shape.
//   - No host synchronisation: the per-expert row counts are read on the device, so the layer
//     can be captured in a CUDA graph. The grid is sized on the host from an upper bound of the
//     M tiles, floor(P / BM) + min(E, P) (each non-empty expert adds at most one partial tile),
//     times the N tiles; every CTA first turns offsets into the exclusive prefix of M tiles per
//     expert (warp 0, one shuffle scan, into shared memory; E + 1 ints, read from L2), then maps
//     blockIdx.x = n_tile · (total M tiles) + m_tile and finds its expert by binary search.
//     CTAs past the real tile count exit at once. M tiles never straddle experts; rows past an
//     expert's end load as zeros (cp.async zero-fill) and are not stored.
//   - M tile fastest in blockIdx: the CTAs that share one expert's weight tile run side by side,
//     so each active expert's weights come from HBM once (decode: one M tile per expert anyway).
//   - gate_up GEMM with a fused SwiGLU epilogue: the B tile of N-tile j holds, per warp, WN/2
//     gate rows and the WN/2 up rows of the same channels, so each thread has gate and up of
//     one output element in its own accumulators and writes silu(gate)·up as bf16: the [P, 2Im]
//     gate_up tensor never reaches memory. The down GEMM is the same kernel, plain epilogue.
//   - Tensor cores through mma.sync m16n8k16 (bf16 in, fp32 accumulate), operands by ldmatrix
//     from shared memory, tiles by cp.async in a STAGES-deep ring: the sm_80 instruction set,
//     correct on sm_90a. Decode (few rows per expert) is bound by streaming the weights and the
//     16-row M tile wastes little; prefill is bound by the tensor cores and runs at what
//     mma.sync allows on Hopper, well under wgmma. A wgmma/TMA main loop is the next step for
//     prefill (the scheduling, the epilogues and the tests stay).
//
// Decode (programmatic dependent launch, pdl.cuh; both GEMMs are launched with it):
//   - gate_up waits for the kernels before it (they write the offsets and the rows) first thing,
//     then lets the down GEMM launch. The down GEMM reads the offsets and finds its tile before
//     its own wait: the offsets were written before gate_up, whose CTAs all passed their wait
//     before any down CTA could start, so they are visible; hidden (gate_up's output) is read
//     only after the wait.
//   - With its tile known, the down GEMM also issues the cp.async copies of its first
//     STAGES - 1 B (weight) k-tiles before the wait, so the first trip to HBM overlaps gate_up's
//     tail (and all of gate_up where the two grids' CTAs fit an SM together). Safe: no kernel of a
//     step writes a weight, and the expert and N tile that pick the rows come from the offsets
//     above. gate_up cannot do this: its expert comes from offsets written by the kernel just
//     before it. The A k-tiles of the prologue (rows the kernel before wrote) go after the wait,
//     as loads into registers stored to shared memory rather than cp.async: a cp.async group
//     issued after the wait would be younger than every B group, and cp.async.wait_group waits
//     for the oldest groups first, so k-tile 0 would wait for the whole prologue. The B groups
//     stay one per k-tile, so the main loop's wait_group counts as before; the shared memory
//     holds the same bytes as with cp.async, and the results are the same bits.
//   - The bytes in flight come from the cp.async ring alone, its depth chosen per grid
//     (MoeDecodeRing, moe_grouped_gemm_sm80_heuristics.h). An L2 prefetch of each B row k-tiles
//     ahead of the ring (cp.async.bulk.prefetch, commits 84205ae/bb0e91d) was measured and
//     removed: V2-Lite, H200, distance 0/4/8/16 k-tiles: one token 37.9/38.2/38.1/45.3 us, eight
//     tokens 148/157/168/186 us: it never helped and at 8 tokens cost up to 26%.
//
// Shared memory: STAGES x [A: BM rows][B: BN rows] of 64 bf16 = 128 B per row, 16-byte chunk c of
// row r stored at chunk c ^ (r % 8) (conflict-free cp.async stores and ldmatrix reads), then the
// M-tile prefix [E + 1] i32.
//
// Main loop (standard multistage): prologue issues STAGES-1 k-tiles (B by cp.async, one group a
// k-tile; A by registers, see the PDL note); iteration kt waits until
// k-tile kt has landed (cp.async.wait_group STAGES-2), a barrier publishes it and frees the stage
// read at kt-1, the copy of k-tile kt+STAGES-1 goes into that stage, then 4 k16 steps of
// ldmatrix + mma on stage kt % STAGES.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/moe_grouped_gemm_sm80_params.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/sm80_ptx.cuh"
#include "ops/cuda/swiglu.cuh"

namespace mlaserve::ops::sm80 {

// One tile configuration (see the heuristics header for which runs when).
template <int BM, int BN, int STAGES, int WARPS_M, int WARPS_N, int MIN_BLOCKS>
struct MoeTile {
  static constexpr int kBM = BM, kBN = BN, kBK = 64, kStages = STAGES;
  static constexpr int kWarpsM = WARPS_M, kWarpsN = WARPS_N, kMinBlocks = MIN_BLOCKS;
  static constexpr int kThreads = 32 * WARPS_M * WARPS_N;
  static constexpr int kWM = BM / WARPS_M, kWN = BN / WARPS_N;  // warp tile
  static constexpr int kMI = kWM / 16, kNI = kWN / 8;           // m16 and n8 mma tiles per warp
  static constexpr int kRowBytes = kBK * 2;                      // 128: one tile row in shared memory
  static constexpr int kStageBytes = (BM + BN) * kRowBytes;
  static constexpr int kPipelineBytes = STAGES * kStageBytes;
  static constexpr int kAChunks = BM * 8 / kThreads;             // 16-byte copies per thread and stage
  static constexpr int kBChunks = BN * 8 / kThreads;
  static_assert(kWM % 16 == 0 && kWN % 16 == 0, "warp tiles are whole m16 blocks and pairs of n8 blocks");
  static_assert(BM * 8 % kThreads == 0 && BN * 8 % kThreads == 0, "copies divide evenly over the threads");
  static_assert(STAGES >= 2, "a pipeline needs two stages");
};

// The decode tiles: one 16 x 64 tile, 4 warps of 16 x 16, rings of several depths (MoeDecodeRing
// in moe_grouped_gemm_sm80_heuristics.h says which runs when). Template arguments: stages, CTAs
// an SM (the occupancy the ring is sized for, also the launch bound).
template <int STAGES, int PER_SM>
using MoeTileDecodeRing = MoeTile<16, 64, STAGES, 1, 4, PER_SM>;
using MoeTileDecode = MoeTileDecodeRing<6, 3>;  // kStream: grids of many waves
using MoeTileDecode2PerSm = MoeTileDecodeRing<11, 2>;
using MoeTileDecode3PerSm = MoeTileDecodeRing<7, 3>;
using MoeTileDecode4PerSm = MoeTileDecodeRing<5, 4>;
using MoeTileDecode5PerSm = MoeTileDecodeRing<4, 5>;
using MoeTileDecode7PerSm = MoeTileDecodeRing<3, 7>;

// Whether kMinBlocks CTAs of Tile fit one SM's 228 KB of shared memory with the M-tile prefix of
// up to 256 experts (the released models) and the 1 KB the hardware reserves per CTA.
template <class Tile>
inline constexpr bool kFitsPerSm = Tile::kMinBlocks * (Tile::kPipelineBytes + 257 * 4 + 1024) <= 228 * 1024;
static_assert(kFitsPerSm<MoeTileDecode> && kFitsPerSm<MoeTileDecode2PerSm> && kFitsPerSm<MoeTileDecode3PerSm> &&
                  kFitsPerSm<MoeTileDecode4PerSm> && kFitsPerSm<MoeTileDecode5PerSm> &&
                  kFitsPerSm<MoeTileDecode7PerSm>,
              "each decode ring keeps its CTAs an SM");
using MoeTileMid = MoeTile<64, 128, 4, 2, 4, 2>;
using MoeTilePrefill = MoeTile<128, 256, 4, 2, 4, 1>;

// ---- PTX wrappers -------------------------------------------------------------------------

// smem_u32, cp_async_16 / _commit / _wait, ldmatrix_x4, mma_16816: sm80_ptx.cuh.

// Byte offset of 16-byte chunk `chunk` of tile row `row` (the swizzle above).
__device__ __forceinline__ uint32_t tile_offset(int row, int chunk) { return swizzled_offset<128>(row, chunk); }

// ---- scheduling ---------------------------------------------------------------------------

// Expert e's rows from offsets[e] and offsets[e + 1], clamped to [0, P] so that no offsets can
// send a CTA outside the tensors (clamp_rows; expert_rows reads the two offsets).
// Params: any launch struct with expert_offsets, num_rows and num_experts (the BF16 kernel's
// MoeGemmParams, the FP8 kernel's MoeFp8GemmParams). Read from L2 (ld.global.cg), never from a
// line an earlier kernel left in L1: the down GEMM reads them before its dependency wait (see
// the PDL note at the top).
__device__ __forceinline__ void clamp_rows(int offset, int next_offset, int num_rows, int& begin, int& end) {
  begin = min(max(offset, 0), num_rows);
  end = min(max(next_offset, begin), num_rows);
}

template <class Params>
__device__ __forceinline__ void expert_rows(const Params& p, int e, int& begin, int& end) {
  clamp_rows(__ldcg(p.expert_offsets + e), __ldcg(p.expert_offsets + e + 1), p.num_rows, begin, end);
}

// M tile m_tile of the grouped order (< tile_start[num_experts], expert_tile_prefix's output):
// its expert e (tile_start[e] <= m_tile < tile_start[e + 1], by bisection), first row in
// [0, P) and row count (1 .. BM).
template <int BM, class Params>
__device__ __forceinline__ void locate_m_tile(const Params& p, const int32_t* tile_start, int m_tile, int& expert,
                                              int& row0, int& rows) {
  int lo = 0, hi = p.num_experts;  // tile_start[lo] <= m_tile < tile_start[hi]
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (tile_start[mid] <= m_tile) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  int begin, end;
  expert_rows(p, lo, begin, end);
  expert = lo;
  row0 = begin + (m_tile - tile_start[lo]) * BM;
  rows = min(BM, end - row0);
}

// Warp 0: tile_start[e] = M tiles of experts 0 .. e-1, tile_start[E] = all of them. Each lane
// sums a contiguous run of experts, one shuffle scan adds the runs. A lane reads the offsets of
// up to 8 experts (9 values) with independent loads before it uses any, so a run of <= 8 experts
// (every released model: E <= 256) costs one trip to L2, not one per expert; its counts wait in
// tile_start[e] (its own entries) for the scan. At one token this is on the critical path: the
// gate_up GEMM starts streaming only after it.
template <int BM, class Params>
__device__ void expert_tile_prefix(const Params& p, int32_t* tile_start) {
  constexpr int kBatch = 8;
  const int lane = static_cast<int>(threadIdx.x);
  const int per_lane = (p.num_experts + 31) / 32;
  const int first = lane * per_lane, last = min(first + per_lane, p.num_experts);
  int own = 0;
  for (int e0 = first; e0 < last; e0 += kBatch) {
    int o[kBatch + 1];  // offsets[e0 .. e0 + 8], indices past `last` read offsets[last] (in bounds)
#pragma unroll
    for (int j = 0; j <= kBatch; ++j) o[j] = __ldcg(p.expert_offsets + min(e0 + j, last));
#pragma unroll
    for (int j = 0; j < kBatch; ++j) {
      if (e0 + j >= last) break;
      int begin, end;
      clamp_rows(o[j], o[j + 1], p.num_rows, begin, end);
      const int m_tiles = (end - begin + BM - 1) / BM;
      tile_start[e0 + j] = m_tiles;
      own += m_tiles;
    }
  }
  int inclusive = own;
#pragma unroll
  for (int d = 1; d < 32; d <<= 1) {
    const int v = __shfl_up_sync(0xffffffffu, inclusive, d);
    if (lane >= d) inclusive += v;
  }
  int run = inclusive - own;
  for (int e = first; e < last; ++e) {
    const int m_tiles = tile_start[e];
    tile_start[e] = run;
    run += m_tiles;
  }
  if (lane == 31) tile_start[p.num_experts] = inclusive;
}

// The (expert, M tile, N tile) of this CTA: blockIdx.x = n_tile · (total M tiles) + m_tile, the
// expert found by binary search in the M-tile prefix (see the note at the top). Every thread of
// the CTA calls this (it holds a __syncthreads); valid == false: the CTA has nothing to do.
struct CtaTile {
  bool valid;
  int expert, n_tile;
  int row0, rows;  // the tile's first row in [0, P) and its row count (<= BM)
};

template <int BM, class Params>
__device__ __forceinline__ CtaTile cta_tile(const Params& p, int32_t* tile_start, int warp) {
  if (warp == 0) expert_tile_prefix<BM>(p, tile_start);
  __syncthreads();
  CtaTile t{false, 0, 0, 0, 0};
  const int total_m_tiles = tile_start[p.num_experts];
  if (total_m_tiles == 0) return t;
  const int bid = static_cast<int>(blockIdx.x);
  if (bid >= total_m_tiles * p.n_tiles) return t;
  t.n_tile = bid / total_m_tiles;
  const int m_tile = bid - t.n_tile * total_m_tiles;
  locate_m_tile<BM>(p, tile_start, m_tile, t.expert, t.row0, t.rows);
  t.valid = true;
  return t;
}

// Weight row (within the expert) held by row t of the B tile of N tile n_tile. SwiGLU: warp
// column group w holds WN/2 gate rows then the WN/2 up rows of the same channels.
template <class Tile, bool kSwiGlu>
__device__ __forceinline__ int b_tile_row(int n_tile, int t, int intermediate) {
  if constexpr (kSwiGlu) {
    constexpr int kHalf = Tile::kWN / 2;
    const int warp_n = t / Tile::kWN, within = t % Tile::kWN;
    const int channel = n_tile * (Tile::kBN / 2) + warp_n * kHalf + within % kHalf;
    return (within / kHalf) * intermediate + channel;
  } else {
    return n_tile * Tile::kBN + t;
  }
}

// A warp's fp32 tile (the running sums, or the FP8 kernel's partial sums of a group) set to zero.
template <class Tile>
__device__ __forceinline__ void zero_tile(float (&v)[Tile::kMI][Tile::kNI][4]) {
#pragma unroll
  for (int mi = 0; mi < Tile::kMI; ++mi) {
#pragma unroll
    for (int ni = 0; ni < Tile::kNI; ++ni) {
#pragma unroll
      for (int c = 0; c < 4; ++c) v[mi][ni][c] = 0.0f;
    }
  }
}

// The epilogue of the grouped kernels (this one and the FP8 one, moe_grouped_gemm_fp8_sm89.cuh):
// the warp's fp32 tile to out [P, n_out] bf16, through SwiGLU for gate_up. Accumulator (mi, ni)
// element j sits at tile row warp_m*WM + mi*16 + lane/4 (+8 for j >= 2), column
// warp_n*WN + ni*8 + 2*(lane%4) + j%2; rows past `rows` are not written.
template <class Tile, bool kSwiGlu>
__device__ __forceinline__ void store_tile(const float (&acc)[Tile::kMI][Tile::kNI][4], __nv_bfloat16* out,
                                           int32_t n_out, int row0, int rows, int n_tile, int warp_m, int warp_n,
                                           int lane) {
  const int lane_row = lane >> 2, lane_col = (lane & 3) * 2;
#pragma unroll
  for (int mi = 0; mi < Tile::kMI; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = warp_m * Tile::kWM + mi * 16 + half * 8 + lane_row;
      if (r >= rows) continue;
      __nv_bfloat16* out_row = out + static_cast<int64_t>(row0 + r) * n_out;
      if constexpr (kSwiGlu) {
#pragma unroll
        for (int ni = 0; ni < Tile::kNI / 2; ++ni) {
          const float g0 = acc[mi][ni][half * 2], g1 = acc[mi][ni][half * 2 + 1];
          const float u0 = acc[mi][ni + Tile::kNI / 2][half * 2], u1 = acc[mi][ni + Tile::kNI / 2][half * 2 + 1];
          const float h0 = gpu::swiglu(g0, u0), h1 = gpu::swiglu(g1, u1);
          const int col = n_tile * (Tile::kBN / 2) + warp_n * (Tile::kWN / 2) + ni * 8 + lane_col;
          *reinterpret_cast<__nv_bfloat162*>(out_row + col) = __floats2bfloat162_rn(h0, h1);
        }
      } else {
#pragma unroll
        for (int ni = 0; ni < Tile::kNI; ++ni) {
          const int col = n_tile * Tile::kBN + warp_n * Tile::kWN + ni * 8 + lane_col;
          *reinterpret_cast<__nv_bfloat162*>(out_row + col) =
              __floats2bfloat162_rn(acc[mi][ni][half * 2], acc[mi][ni][half * 2 + 1]);
        }
      }
    }
  }
}

// ---- the kernel ---------------------------------------------------------------------------

template <class Tile, bool kSwiGlu>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    moe_grouped_gemm_sm80_kernel(const MoeGemmParams p) {
  extern __shared__ __align__(128) uint8_t smem[];
  int32_t* tile_start = reinterpret_cast<int32_t*>(smem + Tile::kPipelineBytes);  // [E + 1]
  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / Tile::kWarpsN, warp_n = warp % Tile::kWarpsN;

  // Which (expert, M tile, N tile) this CTA computes; the down GEMM looks, and issues its first
  // B k-tiles, before its wait (see the note at the top).
  if constexpr (kSwiGlu) gpu::grid_dependency_wait();
  const CtaTile tile = cta_tile<Tile::kBM>(p, tile_start, warp);
  if constexpr (kSwiGlu) gpu::launch_dependents();
  const int n_tile = tile.n_tile, row0 = tile.row0, rows = tile.rows;

  // Per-thread copy sources (element offsets; k-tile kt adds kt * 64) and destinations.
  const int k_tiles = p.k / Tile::kBK;
  const __nv_bfloat16* b_base = p.b + static_cast<int64_t>(tile.expert) * p.b_rows * p.k;
  const __nv_bfloat16* a_base = p.a + static_cast<int64_t>(row0) * p.k;
  uint32_t a_src[Tile::kAChunks], a_dst[Tile::kAChunks], b_src[Tile::kBChunks], b_dst[Tile::kBChunks];
  bool a_valid[Tile::kAChunks];
#pragma unroll
  for (int i = 0; i < Tile::kAChunks; ++i) {
    const int idx = tid + i * Tile::kThreads, r = idx / 8, c = idx % 8;
    a_valid[i] = r < rows;
    a_src[i] = static_cast<uint32_t>((a_valid[i] ? r : 0) * p.k + c * 8);
    a_dst[i] = tile_offset(r, c);
  }
#pragma unroll
  for (int i = 0; i < Tile::kBChunks; ++i) {
    const int idx = tid + i * Tile::kThreads, r = idx / 8, c = idx % 8;
    b_src[i] = static_cast<uint32_t>(b_tile_row<Tile, kSwiGlu>(n_tile, r, p.n_out) * p.k + c * 8);
    b_dst[i] = Tile::kBM * Tile::kRowBytes + tile_offset(r, c);
  }
  const uint32_t smem_base = smem_u32(smem);

  auto load_b = [&](int stage, int kt) {
    const uint32_t base = smem_base + stage * Tile::kStageBytes;
    const int k0 = kt * Tile::kBK;
#pragma unroll
    for (int i = 0; i < Tile::kBChunks; ++i) cp_async_16(base + b_dst[i], b_base + b_src[i] + k0, true);
  };
  auto load_stage = [&](int stage, int kt) {
    const uint32_t base = smem_base + stage * Tile::kStageBytes;
    const int k0 = kt * Tile::kBK;
#pragma unroll
    for (int i = 0; i < Tile::kAChunks; ++i) cp_async_16(base + a_dst[i], a_base + a_src[i] + k0, a_valid[i]);
    load_b(stage, kt);
  };

  // Prologue, B: STAGES - 1 weight k-tiles, one cp.async group each (empty past K). The down GEMM
  // issues them before its wait, gate_up after (its wait came first).
  if (tile.valid) {
#pragma unroll
    for (int s = 0; s < Tile::kStages - 1; ++s) {
      if (s < k_tiles) load_b(s, s);
      cp_async_commit();
    }
  }
  if constexpr (!kSwiGlu) {
    gpu::grid_dependency_wait();
    gpu::launch_dependents();
  }
  if (!tile.valid) return;

  // Prologue, A: the same k-tiles of the rows (written by the kernel before: after the wait), all
  // loads from L2 in flight before the first store; rows past the tile's end and k-tiles past K
  // are zeros, as cp.async's zero-fill would write.
  {
    uint4 a_regs[Tile::kStages - 1][Tile::kAChunks];
#pragma unroll
    for (int s = 0; s < Tile::kStages - 1; ++s) {
#pragma unroll
      for (int i = 0; i < Tile::kAChunks; ++i) {
        a_regs[s][i] = a_valid[i] && s < k_tiles
                           ? __ldcg(reinterpret_cast<const uint4*>(a_base + a_src[i] + s * Tile::kBK))
                           : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int s = 0; s < Tile::kStages - 1; ++s) {
#pragma unroll
      for (int i = 0; i < Tile::kAChunks; ++i) {
        *reinterpret_cast<uint4*>(smem + s * Tile::kStageBytes + a_dst[i]) = a_regs[s][i];
      }
    }
  }

  float acc[Tile::kMI][Tile::kNI][4];
  zero_tile<Tile>(acc);

  // ldmatrix lane addressing: A rows lane % 16, k chunk lane / 16; B (as [n][k]) rows lane % 8
  // plus 8 for lanes 16-31, k chunk (lane / 8) % 2 -> b0/b1 of two n8 blocks.
  const int a_row = warp_m * Tile::kWM + (lane & 15), a_chunk = lane >> 4;
  const int b_row = warp_n * Tile::kWN + (lane & 7) + ((lane >> 4) << 3), b_chunk = (lane >> 3) & 1;

  for (int kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<Tile::kStages - 2>();
    __syncthreads();
    const int next = kt + Tile::kStages - 1;
    if (next < k_tiles) load_stage(next % Tile::kStages, next);
    cp_async_commit();

    const uint32_t sa = smem_base + (kt % Tile::kStages) * Tile::kStageBytes;
    const uint32_t sb = sa + Tile::kBM * Tile::kRowBytes;
#pragma unroll
    for (int ks = 0; ks < Tile::kBK / 16; ++ks) {
      uint32_t a[Tile::kMI][4], b[Tile::kNI][2];
#pragma unroll
      for (int mi = 0; mi < Tile::kMI; ++mi) {
        ldmatrix_x4(a[mi], sa + tile_offset(a_row + mi * 16, ks * 2 + a_chunk));
      }
#pragma unroll
      for (int np = 0; np < Tile::kNI / 2; ++np) {
        uint32_t r[4];
        ldmatrix_x4(r, sb + tile_offset(b_row + np * 16, ks * 2 + b_chunk));
        b[2 * np][0] = r[0];
        b[2 * np][1] = r[1];
        b[2 * np + 1][0] = r[2];
        b[2 * np + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < Tile::kMI; ++mi) {
#pragma unroll
        for (int ni = 0; ni < Tile::kNI; ++ni) mma_16816(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
      }
    }
  }
  cp_async_wait<0>();

  store_tile<Tile, kSwiGlu>(acc, p.out, p.n_out, row0, rows, n_tile, warp_m, warp_n, lane);
}

}  // namespace mlaserve::ops::sm80
