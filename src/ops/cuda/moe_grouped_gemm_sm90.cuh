// Grouped BF16 GEMM over the routed experts, Hopper prefill configuration (TMA + mbarrier
// pipeline + wgmma): device code. Contract: ops/moe_experts.h (moe_experts_cuda); the launch is in
// moe_grouped_gemm_sm90.cu, the tile shapes in moe_grouped_gemm_sm90.h, the choice between this
// and the mma.sync kernels in moe_grouped_gemm_sm80_heuristics.h. Symbols as in
// moe_grouped_gemm_sm80.cuh: P gathered rows in expert order, E experts, H hidden, Im expert
// intermediate, offsets[E + 1] on the device.
//
// Scheduling is the sm80 kernel's (see its note): the grid is an upper bound of the M tiles
// times the N tiles, every CTA scans offsets into the M-tile prefix (shared memory) and finds its
// (expert, M tile, N tile); CTAs past the real tile count exit. No host synchronisation, so the
// layer can be captured in a CUDA graph. The M tiles go in groups of kGroupM, each group walking
// all N tiles with its M tiles fastest: the CTAs that share one expert's weight tile run side by
// side (each weight byte from HBM about once) and a wave touches a few A row blocks (L2 hits).
//
// One kernel template, two tile shapes (TileShape<BM, BN, stages>; why two: the note of
// moe_grouped_gemm_sm90.h): BM rows x BN weight rows x 64 K (one 128-byte swizzled row per tile
// row).
//   128 x 256, 4 stages of 48 KB: two consumer warpgroups, wgmma m64n256k16, 128 fp32
//     accumulators a thread; 288 threads.
//   192 x 128, 5 stages of 40 KB: three consumer warpgroups, wgmma m64n128k16, 64 accumulators a
//     thread; 416 threads.
// Consumer warpgroup wg owns tile rows 64·wg .. 64·wg + 63; one producer warp, whose lane 0
// issues three TMA boxes per stage (A: BM rows at the tile's first row; B: two boxes of BN/2
// weight rows). A rows past the expert's end belong to the next expert or (past P) read as zeros:
// they are computed and not stored, except that a warpgroup whose rows all lie past the end (a
// tile of <= 64 or <= 128 rows) only keeps the ring turning.
//
// SwiGLU (gate_up): B box 0 holds gate rows c0 .. c0+BN/2-1 of the expert, box 1 the up rows of
// the same channels, so accumulator column n < BN/2 (gate) and n + BN/2 (up) sit in the same
// thread (fragment j and j + BN/16) and the epilogue writes silu(gate)·up as bf16 into a
// BN/2-wide slice of hidden [P, Im]. Plain (down): the boxes hold weight rows n0 .. n0+BN-1,
// out [P, H].
//
// Pipeline: full[s] (1 arrival + the stage's bytes) and empty[s] (every consumer warp). A
// consumer warpgroup issues the 4 wgmmas of k-tile kt, commits, waits until only that group is
// running, and then releases the stage of k-tile kt-1: one wgmma group stays in flight behind the
// loads.
//
// Shared memory (1 KB-aligned base): stages [kStages][A BM x 128 B | B BN x 128 B], full[kStages],
// empty[kStages] (u64), M-tile prefix [E + 1] i32.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>

#include <cstdint>
#include <utility>

#include <cute/arch/mma_sm90_gmma.hpp>

#include "ops/cuda/fragment_store.cuh"
#include "ops/cuda/moe_grouped_gemm_sm80.cuh"
#include "ops/cuda/moe_grouped_gemm_sm80_params.h"
#include "ops/cuda/moe_grouped_gemm_sm90.h"
#include "ops/cuda/sm90_ptx.cuh"

namespace mlaserve::ops::sm90::moe {

// Launch parameters: the sm80 kernel's (pointers, offsets, sizes, n_tiles) plus the two tensor
// maps (bf16, boxes of 64 channels x BM or BN/2 rows, 128-byte swizzle).
struct Params {
  CUtensorMap a_map;  // [P, K]: x (gate_up) or hidden (down)
  CUtensorMap b_map;  // [E · b_rows, K]: the stacked expert weights
  sm80::MoeGemmParams g;
};

template <class Tile>
struct Layout {
  static constexpr int kBM = Tile::kBM, kBN = Tile::kBN, kStages = Tile::kStages;
  static constexpr int kBK = 64;                              // K per stage: 128 bytes of bf16
  static constexpr int kWarpgroups = kBM / 64;                // consumers, m64 each
  static constexpr int kConsumerWarps = 4 * kWarpgroups;
  static constexpr int kThreads = 32 * kConsumerWarps + 32;   // + the producer warp
  static constexpr int kAcc = kBN / 2;                        // fp32 accumulators a thread (m64nBN)
  static constexpr int kABytes = kBM * 128;                   // [kBM][64] bf16
  static constexpr int kBBoxRows = kBN / 2;                   // two B boxes a stage
  static constexpr int kBBoxBytes = kBBoxRows * 128;
  static constexpr int kStageBytes = Tile::kStageBytes;
  static constexpr int kFull = kStages * kStageBytes;
  static constexpr int kEmpty = kFull + 8 * kStages;
  static constexpr int kTileStart = kEmpty + 8 * kStages;
  static constexpr int kGroupM = 8;
  static_assert(kBM % 64 == 0 && kBM <= 256, "m64 warpgroups; a TMA box holds <= 256 rows");
  static_assert(kBN == 128 || kBN == 256, "one n128 or n256 wgmma a warpgroup");
  static_assert(kStageBytes == kABytes + 2 * kBBoxBytes, "a stage is A and two B boxes");
  static_assert(kABytes % 1024 == 0 && kStageBytes % 1024 == 0, "tiles must stay 1 KB-aligned (128-byte swizzle)");
  static_assert(Tile::smem_bytes(0) == kTileStart + 4 + 1024, "smem_bytes (host) matches the layout");
  static_assert(Tile::smem_bytes(256) <= 227 * 1024, "fits the SM's shared memory at 256 experts");
};

namespace gmma = cute::SM90::GMMA;
template <int kBN>
struct WgmmaOf;
template <>
struct WgmmaOf<256> {
  using type = gmma::MMA_64x256x16_F32BF16BF16_SS<gmma::Major::K, gmma::Major::K>;
};
template <>
struct WgmmaOf<128> {
  using type = gmma::MMA_64x128x16_F32BF16BF16_SS<gmma::Major::K, gmma::Major::K>;
};

template <int kBN, size_t N, size_t... I>
__device__ __forceinline__ void wgmma_k16(uint64_t a, uint64_t b, float (&d)[N], std::index_sequence<I...>) {
  WgmmaOf<kBN>::type::fma(a, b, d[I]..., gmma::ScaleOut::One);
}

struct TileCoord {
  bool valid;
  int expert, n_tile;
  int row0, rows;  // the tile's first row in [0, P) and its row count (1 .. kBM)
};

// The (expert, M tile, N tile) of this CTA (grouped order, see the note). Every thread calls it
// (it holds a __syncthreads).
template <class Tile>
__device__ __forceinline__ TileCoord find_tile(const sm80::MoeGemmParams& p, int32_t* tile_start, int warp) {
  constexpr int kGroupM = Layout<Tile>::kGroupM;
  if (warp == 0) sm80::expert_tile_prefix<Tile::kBM>(p, tile_start);
  __syncthreads();
  TileCoord t{false, 0, 0, 0, 0};
  const int total_m = tile_start[p.num_experts];
  const int bid = static_cast<int>(blockIdx.x);
  if (total_m == 0 || bid >= total_m * p.n_tiles) return t;
  const int per_group = kGroupM * p.n_tiles, first_m = bid / per_group * kGroupM;
  const int group_m = min(total_m - first_m, kGroupM), within = bid % per_group;
  const int m_tile = first_m + within % group_m;
  t.n_tile = within / group_m;
  sm80::locate_m_tile<Tile::kBM>(p, tile_start, m_tile, t.expert, t.row0, t.rows);
  t.valid = true;
  return t;
}

template <class Tile, bool kSwiGlu>
__global__ void __launch_bounds__(Layout<Tile>::kThreads, 1)
    moe_grouped_gemm_sm90_kernel(const __grid_constant__ Params p) {
  using L = Layout<Tile>;
  constexpr int kBN = L::kBN, kStages = L::kStages, kAcc = L::kAcc;
  using namespace ptx;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  const uint32_t base = smem_addr(smem), full = base + L::kFull, empty = base + L::kEmpty;
  int32_t* tile_start = reinterpret_cast<int32_t*>(smem + L::kTileStart);  // [E + 1]
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;

  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(full + 8 * s, 1);                    // the producer (+ the bytes)
      mbarrier_init(empty + 8 * s, L::kConsumerWarps);  // lane 0 of each consumer warp
    }
    mbarrier_init_fence();
  }
  const TileCoord tile = find_tile<Tile>(p.g, tile_start, warp);  // its __syncthreads publishes the barriers
  if (!tile.valid) return;
  const int k_tiles = p.g.k / L::kBK;

  if (warp == L::kConsumerWarps) {  // producer
    if (lane != 0) return;
    const int expert_row = tile.expert * p.g.b_rows;
    const int b_lo = kSwiGlu ? expert_row + tile.n_tile * (kBN / 2) : expert_row + tile.n_tile * kBN;
    const int b_hi = kSwiGlu ? b_lo + p.g.n_out : b_lo + kBN / 2;  // up rows sit Im after the gate rows
    for (int kt = 0; kt < k_tiles; ++kt) {
      const int s = kt % kStages;
      if (kt >= kStages) mbarrier_wait(empty + 8 * s, ((kt / kStages) + 1) & 1);  // use kt/kStages - 1 released
      const uint32_t stage = base + s * L::kStageBytes, bar = full + 8 * s;
      mbarrier_arrive_expect_bytes(bar, L::kStageBytes);
      tma_load_2d(stage, &p.a_map, kt * L::kBK, tile.row0, bar);
      tma_load_2d(stage + L::kABytes, &p.b_map, kt * L::kBK, b_lo, bar);
      tma_load_2d(stage + L::kABytes + L::kBBoxBytes, &p.b_map, kt * L::kBK, b_hi, bar);
    }
    return;
  }

  // Consumers: warpgroup wg owns tile rows 64·wg .. 64·wg + 63. A warpgroup whose rows all lie
  // past the expert's end only keeps the ring turning.
  const int wg = warp / 4;
  if (wg * 64 >= tile.rows) {
    for (int kt = 0; kt < k_tiles; ++kt) {
      const int s = kt % kStages;
      mbarrier_wait(full + 8 * s, (kt / kStages) & 1);
      __syncwarp();
      if (lane == 0) mbarrier_arrive(empty + 8 * s);
    }
    return;
  }
  float acc[kAcc];
#pragma unroll
  for (int i = 0; i < kAcc; ++i) acc[i] = 0.0f;
  for (int kt = 0; kt < k_tiles; ++kt) {
    const int s = kt % kStages;
    mbarrier_wait(full + 8 * s, (kt / kStages) & 1);
    const uint32_t stage = base + s * L::kStageBytes;
    const uint64_t a_desc = gmma_desc_k_sw128(stage + wg * 64 * 128);
    const uint64_t b_desc = gmma_desc_k_sw128(stage + L::kABytes);
    fence_registers(acc);
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < L::kBK / 16; ++ks) {
      wgmma_k16<kBN>(a_desc + 2 * ks, b_desc + 2 * ks, acc, std::make_index_sequence<kAcc>{});
    }
    wgmma_commit();
    wgmma_wait<1>();  // k-tile kt-1's group is done: its stage can be refilled
    fence_registers(acc);
    if (kt > 0) {
      __syncwarp();
      if (lane == 0) mbarrier_arrive(empty + 8 * ((kt - 1) % kStages));
    }
  }
  wgmma_wait<0>();
  fence_registers(acc);

  // Fragment: acc[4j + {0,1,2,3}] = D[r, c], D[r, c+1], D[r+8, c], D[r+8, c+1] with
  // r = 64·wg + 16·(warp % 4) + lane / 4 and c = 8j + 2·(lane % 4), j < kBN / 8; stored 16 bytes a
  // lane (fragment_store.cuh), every lane taking part, a row past the tile storing nothing.
  const int r = wg * 64 + 16 * (warp % 4) + lane / 4;
  const int col0 = tile.n_tile * (kSwiGlu ? kBN / 2 : kBN);
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = r + 8 * half;
    __nv_bfloat16* dst = row < tile.rows ? p.g.out + static_cast<int64_t>(tile.row0 + row) * p.g.n_out + col0 : nullptr;
    gpu::store_fragment_row_bf16<kBN / 8, kSwiGlu>(dst, acc, half, lane);
  }
}

}  // namespace mlaserve::ops::sm90::moe
