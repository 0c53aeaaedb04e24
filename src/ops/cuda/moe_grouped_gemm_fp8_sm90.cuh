// Grouped block-FP8 (W8A8) GEMM over the routed experts, Hopper prefill configuration (TMA +
// mbarrier pipeline + wgmma, persistent CTAs): device code. Contract: ops/moe_experts.h
// (moe_grouped_gemm_fp8_cuda); host code in moe_grouped_gemm_fp8_sm90.cu, one translation unit per
// tile width (moe_grouped_gemm_fp8_sm90_n{128,256}.cu), the rules that pick it in
// moe_grouped_gemm_fp8_sm90.h, parameters in moe_grouped_gemm_fp8_sm89_params.h (shared with the
// mma.sync kernel). Symbols: P gathered rows in expert order, E experts, K = 128·KB, offsets[E + 1]
// on the device.
//
//   acc[r, j] = Σ_g (Σ_{κ∈g} a_q[r, κ] · b_q[e, j, κ]) · a_scales[r, g] · b_scales[e, j / 128, g]
//
// Tiles: 128 rows of one expert x BN weight rows (BN = 128 or 256, moe_grouped_gemm_fp8_sm90.h
// picks), K in 128-wide groups, one pipeline stage per group: A [128][128] + B [BN][128] e4m3
// (32 KB x 6 stages or 48 KB x 4). A CTA = two consumer warpgroups (rows 0-63 and 64-127 of the
// tile) + one producer warpgroup whose first lane issues the TMA boxes of each stage (A: 128 rows
// at the tile's first row; B: BN / 64 boxes of 64 weight rows). Rows past the expert's end belong to the
// next expert or (past P) read as zeros (when P < 128 the A box has P rows and the rest of the
// stage keeps stale bytes); they are computed and not stored. A tile of <= 64 rows leaves the
// second warpgroup idle.
//
// Why BN = 256 as well: a 128 x 128 tile reads 32 KB from L2 per 4.2 MFLOP (128 FLOP/B); at the
// FP8 peak that is ~15 TB/s, beyond L2, and the 128-wide kernel stalls near 1,000 TFLOPS. 128 x 256
// reads 48 KB per 8.4 MFLOP (175 FLOP/B). The m64n256 accumulators do not fit twice (scratch +
// total = 256 registers), so a warpgroup runs the group as two n128 passes through one 64-register
// scratch: 128 totals + 64 scratch. That needs more than the 168 registers a thread of a 384-thread
// CTA gets by default: setmaxnreg gives the consumers 232 and the producer warpgroup 40 (a whole
// warpgroup, as setmaxnreg works per warpgroup: 4 SM quarters x 3 warps x 32 lanes
// x (40 + 2 x 232) <= 64 K registers).
//
// Promotion (DeepGEMM's scheme, linear_fp8_w8a8_cpu's order): per K group and n128 pass a
// warpgroup runs 4 wgmma m64n128k32 into the scratch accumulator (the first one overwrites it),
// waits for them and adds scratch · (a_scale[row, g] · b_scale[block, g]) into the fp32 totals;
// after the last pass it releases the stage. The tensor cores stay busy meanwhile with the other
// warpgroup's wgmma. Each 64-row B box lies in one 128-row scale block, so a thread needs one B
// scale per box and group and two A scales (its rows r and r + 8); they are loaded from global
// memory (L2) one group ahead, while the current group's wgmma run.
//
// SwiGLU (gate_up): the first BN / 128 boxes hold the gate rows of channels c0 .. c0 + BN/2 - 1,
// the others the up rows of the same channels, so the gate and up sums of one output sit in the
// same thread (column blocks J and J + BN/16) and the epilogue writes silu(gate)·up as bf16 into a
// BN/2-wide slice of out [P, Im]. Plain (down): the boxes hold weight rows n0 .. n0+BN-1, out [P, N].
//
// Scheduling (no host synchronisation): every CTA turns offsets into the M-tile prefix (warp 0,
// shared memory, as the sm80 kernel), then walks tiles blockIdx.x, + gridDim.x, ... of the
// total = (M tiles) x (N tiles), grid = one CTA per SM (or fewer tiles). Tile index -> (M tile,
// N tile) in groups of kGroupM M tiles walking all N tiles with the M tiles fastest (the CTAs
// sharing an expert's weight tile run side by side, a wave touches a few A row blocks: L2 hits);
// M tile -> expert by binary search. The producer runs ahead into the next tile through the same
// ring while the consumers store the previous one.
//
// The pairs of tiles 2i, 2i + 1 (two M tiles of one N column: often an expert's two row blocks,
// which read the same weight tile) run side by side in every round of the walk, so the second
// read of the weight tile hits L2, as long as the two CTAs stay in step. They do not when one of
// the pair is short: at V2-Lite's 150 rows an expert (128 + 22) the CTA with the 22-row tile
// finished first, took the next 22-row tile (the stride keeps each CTA on one parity), and drifted
// ahead round after round, until its partner's weight reads missed L2: the weights came from HBM
// ~1.8 times (ncu: 689 against 386 MB at 96 rows an expert). So on odd rounds the two CTAs of a
// pair swap tiles (pair_swapped, moe_grouped_gemm_fp8_sm90.h): each takes a long and a short tile
// in turn and the pair stays in step.
//
// Pipeline: full[s] (1 arrival + the stage's bytes) and empty[s] (8 consumer warps, lane 0 each
// after __syncwarp). Stage use `it` counts over all tiles of the CTA: stage it % kStages, phase
// (it / kStages) & 1.
//
// Shared memory (1 KB-aligned base): stages [kStages][A 16 KB | B BN x 128 B], full[kStages],
// empty[kStages] (u64), M-tile prefix [E + 1] i32.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include <cute/arch/mma_sm90_gmma.hpp>

#include "core/cuda_check.h"
#include "ops/cuda/fragment_store.cuh"
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
  uint32_t stage_bytes;  // bytes the boxes of a stage deliver: 128 · (min(128, P) + BN)
  sm89::MoeFp8GemmParams g;
};

template <int BN>
struct Layout {
  static constexpr int kBK = 128;                             // K per stage: one scale group, 128 bytes
  static constexpr int kStages = stages(BN);
  static constexpr int kConsumerWarps = 8;                    // two warpgroups
  static constexpr int kThreads = 32 * kConsumerWarps + 128;  // + the producer warpgroup
  static constexpr int kProducerRegs = 40;                    // setmaxnreg: the register file split
  static constexpr int kConsumerRegs = 232;                   // (4 x 40 + 8 x 232) x 32 <= 64 K
  static constexpr int kABytes = kBM * kBK;                   // [128][128] e4m3
  static constexpr int kBoxRows = 64;                         // weight rows per TMA box
  static constexpr int kBoxes = BN / kBoxRows;                // B boxes per stage
  static constexpr int kBoxBytes = kBoxRows * kBK;            // [64][128] e4m3
  static constexpr int kHalfBytes = 128 * kBK;                // B rows of one n128 wgmma
  static constexpr int kHalves = BN / 128;                    // n128 wgmma passes per K group
  static constexpr int kStageBytes = kABytes + kBoxes * kBoxBytes;
  static constexpr int kFull = kStages * kStageBytes;
  static constexpr int kEmpty = kFull + 8 * kStages;
  static constexpr int kTileStart = kEmpty + 8 * kStages;
  static constexpr int kAcc = 64;                             // scratch fp32 a thread (m64n128)
  static constexpr int kTotal = BN / 2;                       // running fp32 sums a thread (m64nBN)
  static_assert(BN == 128 || BN == 256, "one or two n128 passes");
  static_assert(kStageBytes % 1024 == 0 && kBoxBytes % 1024 == 0, "boxes stay 1 KB-aligned (128-byte swizzle)");
  static_assert(smem_bytes(BN, 0) == kTileStart + 4 + 1024, "smem_bytes (host) matches the layout");
};

namespace gmma = cute::SM90::GMMA;
using Wgmma = gmma::MMA_64x128x32_F32E4M3E4M3_SS_TN<>;

template <size_t... I>
__device__ __forceinline__ void wgmma_k32(uint64_t a, uint64_t b, float (&d)[64], gmma::ScaleOut scale,
                                          std::index_sequence<I...>) {
  Wgmma::fma(a, b, d[I]..., scale);
}

struct TileCoord {
  int expert, m_tile, n_tile;
  int row0, rows;  // the tile's first row in [0, P) and its row count (1 .. kBM)
};

// Tile `t` (< total M tiles · n_tiles) in the grouped order of the note.
__device__ __forceinline__ TileCoord tile_at(const sm89::MoeFp8GemmParams& p, const int32_t* tile_start, int t) {
  constexpr int kGroupM = 8;
  const int total_m = tile_start[p.num_experts];
  const int per_group = kGroupM * p.n_tiles, first_m = t / per_group * kGroupM;
  const int group_m = min(total_m - first_m, kGroupM), within = t % per_group;
  TileCoord c{};
  c.m_tile = first_m + within % group_m;
  c.n_tile = within / group_m;
  sm80::locate_m_tile<kBM>(p, tile_start, c.m_tile, c.expert, c.row0, c.rows);
  return c;
}

// Weight row (within the expert) of the tile's B box `box`: SwiGLU boxes 0 .. kBoxes/2 - 1 hold
// the gate rows of channels c0 .. c0 + BN/2 - 1, the others the up rows of the same channels
// (Im = n_out rows further); plain boxes hold rows n0 .. n0 + BN - 1.
template <int BN, bool kSwiGlu>
__device__ __forceinline__ int b_box_row(const sm89::MoeFp8GemmParams& p, int n_tile, int box) {
  constexpr int kHalfBoxes = BN / 128;
  if constexpr (kSwiGlu) {
    const int c0 = n_tile * (BN / 2);
    return box < kHalfBoxes ? c0 + 64 * box : p.n_out + c0 + 64 * (box - kHalfBoxes);
  } else {
    return n_tile * BN + 64 * box;
  }
}

template <int BN, bool kSwiGlu>
__global__ void __launch_bounds__(Layout<BN>::kThreads, 1)
    moe_grouped_gemm_fp8_sm90_kernel(const __grid_constant__ Params p) {
  using L = Layout<BN>;
  constexpr int kStages = L::kStages;
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

  if (warp >= L::kConsumerWarps) {  // producer warpgroup: lane 0 of its first warp issues the copies
    ptx::set_max_registers_dec<L::kProducerRegs>();
    if (warp != L::kConsumerWarps || lane != 0) return;
    int it = 0;
    for (int t = first, round = 0; t < tiles; t += stride, ++round) {
      const TileCoord tile = tile_at(g, tile_start, pair_swapped(t, round, stride, tiles));
      const int expert_row = tile.expert * g.b_rows;
      for (int kg = 0; kg < k_groups; ++kg, ++it) {
        const int s = it % kStages;
        if (it >= kStages) mbarrier_wait(empty + 8 * s, ((it / kStages) + 1) & 1);  // use it/kStages - 1 released
        const uint32_t stage = base + s * L::kStageBytes, bar = full + 8 * s;
        mbarrier_arrive_expect_bytes(bar, p.stage_bytes);
        tma_load_2d(stage, &p.a_map, kg * L::kBK, tile.row0, bar);
#pragma unroll
        for (int b = 0; b < L::kBoxes; ++b) {
          tma_load_2d(stage + L::kABytes + b * L::kBoxBytes, &p.b_map, kg * L::kBK,
                      expert_row + b_box_row<BN, kSwiGlu>(g, tile.n_tile, b), bar);
        }
      }
    }
    return;
  }

  // Consumers: warpgroup wg owns tile rows 64·wg .. 64·wg + 63; this thread's fragment rows are
  // r and r + 8, its columns 8j + c and + 1 with c = 2·(lane % 4) (wgmma's accumulator layout).
  ptx::set_max_registers_inc<L::kConsumerRegs>();
  const int wg = warp / 4;
  const int r = wg * 64 + 16 * (warp % 4) + lane / 4;
  float acc[L::kAcc];  // one n128 pass of one K group (the pass's first wgmma overwrites it)
#pragma unroll
  for (int i = 0; i < L::kAcc; ++i) acc[i] = 0.0f;
  int it = 0;
  for (int t = first, round = 0; t < tiles; t += stride, ++round) {
    const TileCoord tile = tile_at(g, tile_start, pair_swapped(t, round, stride, tiles));
    if (wg * 64 >= tile.rows) {  // no rows here: only keep the ring turning
      for (int kg = 0; kg < k_groups; ++kg, ++it) {
        const int s = it % kStages;
        mbarrier_wait(full + 8 * s, (it / kStages) & 1);
        __syncwarp();
        if (lane == 0) mbarrier_arrive(empty + 8 * s);
      }
      continue;
    }
    // Scale rows (clamped into the tile: rows past its end are computed but never stored) and
    // the tile's two B scale rows: box 0 and 1 (BN = 128: SwiGLU's gate and up boxes lie in
    // different 128-row blocks) or the boxes of pass 0 and of pass 1 (BN = 256: each pass's two
    // boxes lie in one block). Box b's scale is sb[b / kBoxesPerScale].
    // (32-bit element offsets, P · KB < 2^31 as the host checks: pointers would cost twice the
    // registers, and the BN = 256 consumer is at its limit.)
    const int a_s0 = (tile.row0 + min(r, tile.rows - 1)) * k_groups;
    const int a_s1 = (tile.row0 + min(r + 8, tile.rows - 1)) * k_groups;
    constexpr int kBoxesPerScale = L::kBoxes / 2;
    int b_s[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int box_row = b_box_row<BN, kSwiGlu>(g, tile.n_tile, i * kBoxesPerScale);
      b_s[i] = (tile.expert * (g.b_rows / 128) + box_row / 128) * k_groups;
    }

    float total[L::kTotal];
#pragma unroll
    for (int i = 0; i < L::kTotal; ++i) total[i] = 0.0f;
    float sa0 = __ldg(g.a_scales + a_s0), sa1 = __ldg(g.a_scales + a_s1);
    float sb0 = __ldg(g.b_scales + b_s[0]), sb1 = __ldg(g.b_scales + b_s[1]);
    for (int kg = 0; kg < k_groups; ++kg, ++it) {
      const int s = it % kStages;
      mbarrier_wait(full + 8 * s, (it / kStages) & 1);
      const uint32_t stage = base + s * L::kStageBytes;
      const uint64_t a_desc = gmma_desc_k_sw128(stage + wg * 64 * L::kBK);
      // The next group's scales, loaded while the tensor cores run.
      const int next = min(kg + 1, k_groups - 1);
      float n_sa0 = 0.0f, n_sa1 = 0.0f, n_sb0 = 0.0f, n_sb1 = 0.0f;
#pragma unroll
      for (int h = 0; h < L::kHalves; ++h) {
        const uint64_t b_desc = gmma_desc_k_sw128(stage + L::kABytes + h * L::kHalfBytes);
        fence_registers(acc);
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < L::kBK / 32; ++ks) {  // 32 bytes of K per step, inside the swizzled row
          wgmma_k32(a_desc + 2 * ks, b_desc + 2 * ks, acc, ks == 0 ? gmma::ScaleOut::Zero : gmma::ScaleOut::One,
                    std::make_index_sequence<L::kAcc>{});
        }
        wgmma_commit();
        if (h == 0) {
          n_sa0 = __ldg(g.a_scales + a_s0 + next);
          n_sa1 = __ldg(g.a_scales + a_s1 + next);
          n_sb0 = __ldg(g.b_scales + b_s[0] + next);
          n_sb1 = __ldg(g.b_scales + b_s[1] + next);
        }
        wgmma_wait<0>();
        fence_registers(acc);
        if (h == L::kHalves - 1) {  // the stage's last reader in this warp is done
          __syncwarp();
          if (lane == 0) mbarrier_arrive(empty + 8 * s);
        }
        // acc[4j + q]: row r + 8·(q / 2), B column 128·h + 8j + c + (q % 2), box 2h + j / 8.
        const float sb_lo = (2 * h) / kBoxesPerScale == 0 ? sb0 : sb1;      // box 2h
        const float sb_hi = (2 * h + 1) / kBoxesPerScale == 0 ? sb0 : sb1;  // box 2h + 1
        const float s00 = sa0 * sb_lo, s10 = sa1 * sb_lo, s01 = sa0 * sb_hi, s11 = sa1 * sb_hi;
#pragma unroll
        for (int j = 0; j < 16; ++j) {
          const float lo = j < 8 ? s00 : s01, hi = j < 8 ? s10 : s11;
          float* o = total + 64 * h + 4 * j;
          o[0] = fmaf(acc[4 * j + 0], lo, o[0]);
          o[1] = fmaf(acc[4 * j + 1], lo, o[1]);
          o[2] = fmaf(acc[4 * j + 2], hi, o[2]);
          o[3] = fmaf(acc[4 * j + 3], hi, o[3]);
        }
      }
      sa0 = n_sa0;
      sa1 = n_sa1;
      sb0 = n_sb0;
      sb1 = n_sb1;
    }

    // Fragment: total[4J + {0,1,2,3}] = D[r, c'], D[r, c'+1], D[r+8, c'], D[r+8, c'+1] with B
    // column c' = 8J + c, J < BN / 8; stored 16 bytes a lane (fragment_store.cuh), every lane
    // taking part, a row past the tile storing nothing.
    const int col0 = tile.n_tile * (kSwiGlu ? BN / 2 : BN);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = r + 8 * half;
      __nv_bfloat16* dst = row < tile.rows ? g.out + static_cast<int64_t>(tile.row0 + row) * g.n_out + col0 : nullptr;
      gpu::store_fragment_row_bf16<BN / 8, kSwiGlu>(dst, total, half, lane);
    }
  }
}

// The launch of one tile width (both epilogues), in a translation unit per width
// (moe_grouped_gemm_fp8_sm90_n{128,256}.cu): persistent grid, one CTA per SM or one per tile
// when the upper bound of the tiles is smaller (the real count is known on the device only).
template <int BN>
void launch(const Params& p, bool swiglu, int sm_count, cudaStream_t stream) {
  const auto smem = static_cast<int>(smem_bytes(BN, p.g.num_experts));
  const auto kernel = swiglu ? moe_grouped_gemm_fp8_sm90_kernel<BN, true> : moe_grouped_gemm_fp8_sm90_kernel<BN, false>;
  MLA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const int64_t max_tiles = (p.g.num_rows / kBM + std::min(p.g.num_experts, p.g.num_rows)) * int64_t{p.g.n_tiles};
  const auto grid = static_cast<unsigned>(std::min<int64_t>(max_tiles, sm_count));
  kernel<<<grid, Layout<BN>::kThreads, smem, stream>>>(p);
  MLA_CUDA_CHECK_LAUNCH();
}

extern template void launch<128>(const Params&, bool, int, cudaStream_t);
extern template void launch<256>(const Params&, bool, int, cudaStream_t);

}  // namespace mlaserve::ops::sm90::moe_fp8
