// Grouped block-FP8 (W8A8) GEMM over the routed experts, Hopper prefill configuration (TMA +
// mbarrier pipeline + wgmma, persistent CTAs): device code. Contract: ops/moe_experts.h
// (moe_grouped_gemm_fp8_cuda); launch in moe_grouped_gemm_fp8_sm90.cu, the rule that picks it in
// moe_grouped_gemm_fp8_sm90.h, parameters in moe_grouped_gemm_fp8_sm89_params.h (shared with the
// mma.sync kernel). Symbols: P gathered rows in expert order, E experts, K = 128·KB, offsets[E + 1]
// on the device.
//
//   acc[r, j] = Σ_g (Σ_{κ∈g} a_q[r, κ] · b_q[e, j, κ]) · a_scales[r, g] · b_scales[e, j / 128, g]
//
// Tiles: 128 rows of one expert x 128 weight rows, K in 128-wide groups (one pipeline stage per
// group: A [128][128] + B [128][128] e4m3 = 32 KB, six stages). A CTA = two consumer warpgroups
// (rows 0-63 and 64-127 of the tile, wgmma m64n128k32) + one producer warp whose lane 0 issues
// the TMA boxes of each stage (A: 128 rows at the tile's first row; B: two boxes of 64 weight
// rows). Rows past the expert's end belong to the next expert or (past P) read as zeros (when
// P < 128 the A box has P rows and the rest of the stage keeps stale bytes); they are computed and
// not stored. A tile of <= 64 rows leaves the second warpgroup idle.
//
// Promotion (DeepGEMM's scheme, linear_fp8_w8a8_cpu's order): per K group a warpgroup runs 4
// wgmma k32 into a scratch accumulator (the first one overwrites it), waits for them, releases
// the stage and adds scratch · (a_scale[row, g] · b_scale[block, g]) into the fp32 total. The
// tensor cores stay busy meanwhile with the other warpgroup's group. The 64 B rows of one half
// tile lie in one 128-row scale block, so a thread needs two B scales per group (one per half)
// and two A scales (its rows r and r + 8); they are loaded from global memory (L2) one group
// ahead, while the current group's wgmma run.
//
// SwiGLU (gate_up): B box 0 holds gate rows c0 .. c0+63 of the expert, box 1 the up rows of the
// same channels, so accumulator column n < 64 (gate) and n + 64 (up) sit in the same thread
// (fragment j and j + 8) and the epilogue writes silu(gate)·up as bf16 into a 64-wide slice of
// out [P, Im]. Plain (down): the boxes hold weight rows n0 .. n0+127, out [P, N].
//
// Scheduling (no host synchronisation): every CTA turns offsets into the M-tile prefix (warp 0,
// shared memory, as the sm80 kernel), then walks tiles blockIdx.x, + gridDim.x, ... of the
// total = (M tiles) x (N tiles), grid = one CTA per SM (or fewer tiles). Tile index -> (M tile,
// N tile) in groups of kGroupM M tiles walking all N tiles with the M tiles fastest (the CTAs
// sharing an expert's weight tile run side by side, a wave touches a few A row blocks: L2 hits);
// M tile -> expert by binary search. The producer runs ahead into the next tile through the same
// ring while the consumers store the previous one.
//
// Pipeline: full[s] (1 arrival + the stage's bytes) and empty[s] (8 consumer warps, lane 0 each
// after __syncwarp). Stage use `it` counts over all tiles of the CTA: stage it % kStages, phase
// (it / kStages) & 1.
//
// Shared memory (1 KB-aligned base): stages [6][A 16 KB | B 16 KB], full[6], empty[6] (u64),
// M-tile prefix [E + 1] i32.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>

#include <cstdint>
#include <utility>

#include <cute/arch/mma_sm90_gmma.hpp>

#include "ops/cuda/moe_grouped_gemm_fp8_sm89_params.h"
#include "ops/cuda/moe_grouped_gemm_fp8_sm90.h"
#include "ops/cuda/moe_grouped_gemm_sm80.cuh"
#include "ops/cuda/sm90_ptx.cuh"

namespace mlaserve::ops::sm90::moe_fp8 {

// Launch parameters: the mma.sync kernel's (pointers, offsets, sizes, n_tiles) plus the two
// tensor maps (u8, 128 channels x box rows, 128-byte swizzle).
struct Params {
  CUtensorMap a_map;     // a_q [P, K], boxes of min(128, P) rows
  CUtensorMap b_map;     // b_q [E · b_rows, K], boxes of 64 rows
  uint32_t stage_bytes;  // bytes the three boxes of a stage deliver: 128 · (min(128, P) + 128)
  sm89::MoeFp8GemmParams g;
};

struct Layout {
  static constexpr int kBK = 128;                             // K per stage: one scale group, 128 bytes
  static constexpr int kConsumerWarps = 8;                    // two warpgroups
  static constexpr int kThreads = 32 * kConsumerWarps + 32;   // + the producer warp
  static constexpr int kABytes = kBM * kBK;                   // [128][128] e4m3
  static constexpr int kBHalfBytes = (kBN / 2) * kBK;         // [64][128] e4m3, one TMA box
  static constexpr int kStageBytes = kABytes + 2 * kBHalfBytes;
  static constexpr int kFull = kStages * kStageBytes;
  static constexpr int kEmpty = kFull + 8 * kStages;
  static constexpr int kTileStart = kEmpty + 8 * kStages;
  static constexpr int kGroupM = 8;
  static constexpr int kAcc = kBN / 2;                        // fp32 accumulators a thread (m64n128)
  static_assert(kBM == 128 && kBN == 128, "two m64 warpgroups, one n128 wgmma");
  static_assert(kStageBytes % 1024 == 0 && kBHalfBytes % 1024 == 0, "boxes stay 1 KB-aligned (128-byte swizzle)");
  static_assert(smem_bytes(0) == kTileStart + 4 + 1024, "smem_bytes (host) matches the layout");
};

namespace gmma = cute::SM90::GMMA;
using Wgmma = gmma::MMA_64x128x32_F32E4M3E4M3_SS_TN<>;

template <size_t... I>
__device__ __forceinline__ void wgmma_k32(uint64_t a, uint64_t b, float (&d)[Layout::kAcc], gmma::ScaleOut scale,
                                          std::index_sequence<I...>) {
  Wgmma::fma(a, b, d[I]..., scale);
}

struct TileCoord {
  int expert, m_tile, n_tile;
  int row0, rows;  // the tile's first row in [0, P) and its row count (1 .. kBM)
};

// Tile `t` (< total M tiles · n_tiles) in the grouped order of the note.
__device__ __forceinline__ TileCoord tile_at(const sm89::MoeFp8GemmParams& p, const int32_t* tile_start, int t) {
  const int total_m = tile_start[p.num_experts];
  const int per_group = Layout::kGroupM * p.n_tiles, first_m = t / per_group * Layout::kGroupM;
  const int group_m = min(total_m - first_m, Layout::kGroupM), within = t % per_group;
  TileCoord c{};
  c.m_tile = first_m + within % group_m;
  c.n_tile = within / group_m;
  int lo = 0, hi = p.num_experts;  // tile_start[lo] <= m_tile < tile_start[hi]
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (tile_start[mid] <= c.m_tile) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  int begin, end;
  sm80::expert_rows(p, lo, begin, end);
  c.expert = lo;
  c.row0 = begin + (c.m_tile - tile_start[lo]) * kBM;
  c.rows = min(kBM, end - c.row0);
  return c;
}

// First weight row (within the expert) of the tile's two B boxes.
template <bool kSwiGlu>
__device__ __forceinline__ void b_box_rows(const sm89::MoeFp8GemmParams& p, int n_tile, int& lo, int& hi) {
  lo = kSwiGlu ? n_tile * (kBN / 2) : n_tile * kBN;
  hi = kSwiGlu ? lo + p.n_out : lo + kBN / 2;  // up rows sit Im after the gate rows
}

template <bool kSwiGlu>
__global__ void __launch_bounds__(Layout::kThreads, 1)
    moe_grouped_gemm_fp8_sm90_kernel(const __grid_constant__ Params p) {
  using L = Layout;
  using namespace ptx;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  const uint32_t base = smem_addr(smem), full = base + L::kFull, empty = base + L::kEmpty;
  int32_t* tile_start = reinterpret_cast<int32_t*>(smem + L::kTileStart);  // [E + 1]
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const sm89::MoeFp8GemmParams& g = p.g;

  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(full + 8 * s, 1);                   // the producer (+ the bytes)
      mbarrier_init(empty + 8 * s, L::kConsumerWarps);  // lane 0 of each consumer warp
    }
    mbarrier_init_fence();
  }
  if (warp == 0) sm80::expert_tile_prefix<kBM>(g, tile_start);
  __syncthreads();  // publishes the barriers and the prefix
  const int tiles = tile_start[g.num_experts] * g.n_tiles;
  const int k_groups = g.k / L::kBK;
  const int first = static_cast<int>(blockIdx.x), stride = static_cast<int>(gridDim.x);

  if (warp == L::kConsumerWarps) {  // producer
    if (lane != 0) return;
    int it = 0;
    for (int t = first; t < tiles; t += stride) {
      const TileCoord tile = tile_at(g, tile_start, t);
      int b_lo, b_hi;
      b_box_rows<kSwiGlu>(g, tile.n_tile, b_lo, b_hi);
      const int expert_row = tile.expert * g.b_rows;
      for (int kg = 0; kg < k_groups; ++kg, ++it) {
        const int s = it % kStages;
        if (it >= kStages) mbarrier_wait(empty + 8 * s, ((it / kStages) + 1) & 1);  // use it/kStages - 1 released
        const uint32_t stage = base + s * L::kStageBytes, bar = full + 8 * s;
        mbarrier_arrive_expect_bytes(bar, p.stage_bytes);
        tma_load_2d(stage, &p.a_map, kg * L::kBK, tile.row0, bar);
        tma_load_2d(stage + L::kABytes, &p.b_map, kg * L::kBK, expert_row + b_lo, bar);
        tma_load_2d(stage + L::kABytes + L::kBHalfBytes, &p.b_map, kg * L::kBK, expert_row + b_hi, bar);
      }
    }
    return;
  }

  // Consumers: warpgroup wg owns tile rows 64·wg .. 64·wg + 63; this thread's fragment rows are
  // r and r + 8 (wgmma's accumulator layout, see the epilogue).
  const int wg = warp / 4;
  const int r = wg * 64 + 16 * (warp % 4) + lane / 4, c = 2 * (lane % 4);
  float acc[L::kAcc];  // one K group's scratch sums (the first wgmma of a group overwrites them)
#pragma unroll
  for (int i = 0; i < L::kAcc; ++i) acc[i] = 0.0f;
  int it = 0;
  for (int t = first; t < tiles; t += stride) {
    const TileCoord tile = tile_at(g, tile_start, t);
    if (wg * 64 >= tile.rows) {  // no rows here: only keep the ring turning
      for (int kg = 0; kg < k_groups; ++kg, ++it) {
        const int s = it % kStages;
        mbarrier_wait(full + 8 * s, (it / kStages) & 1);
        __syncwarp();
        if (lane == 0) mbarrier_arrive(empty + 8 * s);
      }
      continue;
    }
    // Scale rows (clamped into the tile: rows past its end are computed but never stored).
    const float* a_s0 = g.a_scales + static_cast<int64_t>(tile.row0 + min(r, tile.rows - 1)) * k_groups;
    const float* a_s1 = g.a_scales + static_cast<int64_t>(tile.row0 + min(r + 8, tile.rows - 1)) * k_groups;
    int b_lo, b_hi;
    b_box_rows<kSwiGlu>(g, tile.n_tile, b_lo, b_hi);
    const float* b_s = g.b_scales + static_cast<int64_t>(tile.expert) * (g.b_rows / 128) * k_groups;
    const float* b_s_lo = b_s + (b_lo / 128) * k_groups;
    const float* b_s_hi = b_s + (b_hi / 128) * k_groups;

    float total[L::kAcc];
#pragma unroll
    for (int i = 0; i < L::kAcc; ++i) total[i] = 0.0f;
    float sa0 = __ldg(a_s0), sa1 = __ldg(a_s1), sb_lo = __ldg(b_s_lo), sb_hi = __ldg(b_s_hi);
    for (int kg = 0; kg < k_groups; ++kg, ++it) {
      const int s = it % kStages;
      mbarrier_wait(full + 8 * s, (it / kStages) & 1);
      const uint32_t stage = base + s * L::kStageBytes;
      const uint64_t a_desc = gmma_desc_k_sw128(stage + wg * 64 * L::kBK);
      const uint64_t b_desc = gmma_desc_k_sw128(stage + L::kABytes);
      fence_registers(acc);
      wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < L::kBK / 32; ++ks) {  // 32 bytes of K per step, inside the swizzled row
        wgmma_k32(a_desc + 2 * ks, b_desc + 2 * ks, acc, ks == 0 ? gmma::ScaleOut::Zero : gmma::ScaleOut::One,
                  std::make_index_sequence<L::kAcc>{});
      }
      wgmma_commit();
      // The next group's scales, in flight while the tensor cores run.
      const int next = min(kg + 1, k_groups - 1);
      const float n_sa0 = __ldg(a_s0 + next), n_sa1 = __ldg(a_s1 + next);
      const float n_sb_lo = __ldg(b_s_lo + next), n_sb_hi = __ldg(b_s_hi + next);
      wgmma_wait<0>();
      fence_registers(acc);
      __syncwarp();
      if (lane == 0) mbarrier_arrive(empty + 8 * s);
      // acc[4j + q]: row r + 8·(q / 2), B half j / 8.
      const float s00 = sa0 * sb_lo, s10 = sa1 * sb_lo, s01 = sa0 * sb_hi, s11 = sa1 * sb_hi;
#pragma unroll
      for (int j = 0; j < L::kAcc / 4; ++j) {
        const float lo = j < L::kAcc / 8 ? s00 : s01, hi = j < L::kAcc / 8 ? s10 : s11;
        total[4 * j + 0] = fmaf(acc[4 * j + 0], lo, total[4 * j + 0]);
        total[4 * j + 1] = fmaf(acc[4 * j + 1], lo, total[4 * j + 1]);
        total[4 * j + 2] = fmaf(acc[4 * j + 2], hi, total[4 * j + 2]);
        total[4 * j + 3] = fmaf(acc[4 * j + 3], hi, total[4 * j + 3]);
      }
      sa0 = n_sa0;
      sa1 = n_sa1;
      sb_lo = n_sb_lo;
      sb_hi = n_sb_hi;
    }

    // Fragment: total[4j + {0,1,2,3}] = D[r, c'], D[r, c'+1], D[r+8, c'], D[r+8, c'+1], c' = 8j + c.
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = r + 8 * half;
      if (row >= tile.rows) continue;
      __nv_bfloat16* out_row = g.out + static_cast<int64_t>(tile.row0 + row) * g.n_out;
      if constexpr (kSwiGlu) {
        __nv_bfloat16* o = out_row + tile.n_tile * (kBN / 2) + c;
#pragma unroll
        for (int j = 0; j < L::kAcc / 8; ++j) {
          const float g0 = total[4 * j + 2 * half], g1 = total[4 * j + 2 * half + 1];
          const float u0 = total[4 * (j + 8) + 2 * half], u1 = total[4 * (j + 8) + 2 * half + 1];
          const float h0 = g0 / (1.0f + __expf(-g0)) * u0, h1 = g1 / (1.0f + __expf(-g1)) * u1;
          *reinterpret_cast<__nv_bfloat162*>(o + 8 * j) = __floats2bfloat162_rn(h0, h1);
        }
      } else {
        __nv_bfloat16* o = out_row + tile.n_tile * kBN + c;
#pragma unroll
        for (int j = 0; j < L::kAcc / 4; ++j) {
          *reinterpret_cast<__nv_bfloat162*>(o + 8 * j) =
              __floats2bfloat162_rn(total[4 * j + 2 * half], total[4 * j + 2 * half + 1]);
        }
      }
    }
  }
}

}  // namespace mlaserve::ops::sm90::moe_fp8
