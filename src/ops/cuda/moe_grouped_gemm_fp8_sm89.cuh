// Grouped block-FP8 (W8A8) GEMM over the routed experts of a MoE layer: device code. Contract:
// ops/moe_experts.h (moe_experts_fp8_cuda); launch code in moe_grouped_gemm_fp8_sm89.cu, tile
// choice in moe_grouped_gemm_fp8_sm89_heuristics.h, parameters in
// moe_grouped_gemm_fp8_sm89_params.h.
//
// The BF16 kernel (moe_grouped_gemm_sm80.cuh, whose note explains the scheduling) with e4m3
// operands. What carries over unchanged: the device-side schedule (M-tile prefix of the expert
// offsets, binary search, no host synchronisation), the cp.async ring, the swizzled 128-byte tile
// rows, the ldmatrix addressing and the two epilogues (fused SwiGLU for gate_up, plain for down).
// What differs:
//   - mma.sync m16n8k32 e4m3 x e4m3 -> f32 (sm_89 and later). Its A and B fragments hold the same
//     bytes at the same lanes as m16n8k16 bf16's (four e4m3 where there were two bf16), so the
//     ldmatrix.b16 addressing is byte-for-byte the BF16 kernel's.
//   - A k-tile is 128 e4m3 = 128 bytes per row: exactly one 128-wide scale group. Each k-tile is
//     summed into a fresh fp32 partial accumulator (4 k32 mma steps), then promoted:
//       acc += partial · (a_scale[row, g] · b_scale[e, row block, g])
//     (DeepGEMM's scheme and linear_fp8_w8a8_cpu's order; the tensor cores' own partial sums stay
//     within one group).
//   - The scales travel with their k-tile: the stage that copies k-tile g's A and B tiles also
//     copies its BM A scales a_scale[row0 + r, g] (rows past the tile's end clamped to its last
//     row: computed, never stored) and its B scales into the stage's scale slot, 4-byte cp.async
//     in the same commit group, so they have landed when the stage has. Loading them from global
//     memory in the K loop instead (as the kernel first did) exposed a global-load latency every
//     k-tile: the math between the load and its use is a few mma steps. A BN tile's rows lie in
//     one 128-row block (BN divides 128; n_tile · BN is a multiple of BN), so a plain tile has
//     one B scale per k-tile; a SwiGLU tile two: its gate rows and its up rows (BN / 2 channels
//     at n_tile · BN / 2, in one 128-row block of each half; Im is a multiple of 128).
//   - A CTA takes a run of n_run column tiles (column_run in the heuristics header): each tile's K
//     groups in turn through the same ring, its epilogue between them, so that a short K (a TP
//     rank's channel share of the experts: down K = 256) still makes a long stream a CTA.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/moe_grouped_gemm_fp8_sm89_params.h"
#include "ops/cuda/moe_grouped_gemm_sm80.cuh"

namespace mlaserve::ops::sm89 {

// One tile configuration (see the heuristics header for which runs when).
template <int BM, int BN, int STAGES, int WARPS_M, int WARPS_N, int MIN_BLOCKS>
struct MoeFp8Tile {
  static constexpr int kBM = BM, kBN = BN, kBK = 128, kStages = STAGES;  // kBK: e4m3 = bytes = one scale group
  static constexpr int kWarpsM = WARPS_M, kWarpsN = WARPS_N, kMinBlocks = MIN_BLOCKS;
  static constexpr int kThreads = 32 * WARPS_M * WARPS_N;
  static constexpr int kWM = BM / WARPS_M, kWN = BN / WARPS_N;  // warp tile
  static constexpr int kMI = kWM / 16, kNI = kWN / 8;           // m16 and n8 mma tiles per warp
  static constexpr int kRowBytes = kBK;                          // 128: one tile row in shared memory
  static constexpr int kStageBytes = (BM + BN) * kRowBytes;
  // Per stage, after all stages' tiles: BM A scales, then the B scales (gate, up; plain: one).
  static constexpr int kScaleSlotFloats = BM + 2;
  static constexpr int kScalesOffset = STAGES * kStageBytes;
  static constexpr int kPipelineBytes = kScalesOffset + STAGES * kScaleSlotFloats * 4;
  static constexpr int kAChunks = BM * 8 / kThreads;             // 16-byte copies per thread and stage
  static constexpr int kBChunks = BN * 8 / kThreads;
  static_assert(kWM % 16 == 0 && kWN % 16 == 0, "warp tiles are whole m16 blocks and pairs of n8 blocks");
  static_assert(BM * 8 % kThreads == 0 && BN * 8 % kThreads == 0, "copies divide evenly over the threads");
  static_assert(STAGES >= 2, "a pipeline needs two stages");
  static_assert(kBK == 128, "one k-tile is one 128-wide scale group (DeepSeek's block size)");
  static_assert(128 % BN == 0, "a B tile's rows (and each SwiGLU half's) lie in one 128-row scale block");
  static_assert(kScaleSlotFloats <= kThreads, "one 4-byte scale copy per thread and stage");
  // MIN_BLOCKS CTAs an SM fit in an sm_90's 228 KB of shared memory, each with the 1 KB the
  // runtime reserves and the tile_start table of up to 256 experts (V3).
  static_assert(MIN_BLOCKS * (kPipelineBytes + 1024 + 257 * 4) <= 228 * 1024, "MIN_BLOCKS CTAs an SM");
};

using MoeFp8TileDecode = MoeFp8Tile<16, 64, 6, 1, 4, 3>;
using MoeFp8TileDecodeWide = MoeFp8Tile<16, 128, 6, 1, 4, 2>;
using MoeFp8TileDecodeFour = MoeFp8Tile<16, 64, 4, 1, 4, 4>;  // four CTAs an SM (use_four_ctas_decode_tile)
using MoeFp8TileMid = MoeFp8Tile<64, 128, 4, 2, 4, 2>;
using MoeFp8TilePrefill = MoeFp8Tile<128, 128, 4, 2, 4, 1>;

// d += a · b for one m16n8k32 e4m3 tile (a: 4 regs of four e4m3, b: 2, d: 4 fp32).
__device__ __forceinline__ void mma_16832_e4m3(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <class Tile, bool kSwiGlu>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    moe_grouped_gemm_fp8_sm89_kernel(const MoeFp8GemmParams p) {
  using sm80::cp_async_16;
  using sm80::cp_async_4;
  using sm80::tile_offset;
  extern __shared__ __align__(128) uint8_t smem[];
  int32_t* tile_start = reinterpret_cast<int32_t*>(smem + Tile::kPipelineBytes);  // [E + 1]
  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp / Tile::kWarpsN, warp_n = warp % Tile::kWarpsN;

  const sm80::CtaTile tile = sm80::cta_tile<Tile::kBM>(p, tile_start, warp);
  if (!tile.valid) return;
  const int expert = tile.expert, row0 = tile.row0, rows = tile.rows;
  // This CTA's run: column tiles first_n_tile .. + n_run - 1, each tile's K groups in turn through
  // one ring (`steps` k-tiles); tile j's weight rows lie kRunRows · j rows past the first's.
  const int first_n_tile = tile.n_tile * p.n_run;
  constexpr int kRunRows = kSwiGlu ? Tile::kBN / 2 : Tile::kBN;
  const int k_groups = p.k / Tile::kBK;  // KB
  const int steps = k_groups * p.n_run;

  // Per-thread copy sources (byte offsets; k-tile kt adds kt * 128) and destinations.
  const uint8_t* a_base = p.a + static_cast<int64_t>(row0) * p.k;
  const uint8_t* b_base = p.b + static_cast<int64_t>(expert) * p.b_rows * p.k;
  uint32_t a_src[Tile::kAChunks], a_dst[Tile::kAChunks], b_src[Tile::kBChunks], b_dst[Tile::kBChunks];
  bool a_valid[Tile::kAChunks];
#pragma unroll
  for (int i = 0; i < Tile::kAChunks; ++i) {
    const int idx = tid + i * Tile::kThreads, r = idx / 8, c = idx % 8;
    a_valid[i] = r < rows;
    a_src[i] = static_cast<uint32_t>((a_valid[i] ? r : 0) * p.k + c * 16);
    a_dst[i] = tile_offset(r, c);
  }
#pragma unroll
  for (int i = 0; i < Tile::kBChunks; ++i) {
    const int idx = tid + i * Tile::kThreads, r = idx / 8, c = idx % 8;
    b_src[i] = static_cast<uint32_t>(sm80::b_tile_row<Tile, kSwiGlu>(first_n_tile, r, p.n_out) * p.k + c * 16);
    b_dst[i] = Tile::kBM * Tile::kRowBytes + tile_offset(r, c);
  }
  const uint32_t smem_base = sm80::smem_u32(smem);

  // This thread's scale copy, if any (k-tile kt adds kt): threads [0, BM) copy the A scale of
  // tile row tid (clamped into the tile), the next one (two with SwiGLU) a B scale, of the 128-row
  // block that holds weight row scale_w_row (+ kRunRows · j for the run's tile j). 32-bit
  // offsets: P · KB and E · b_rows / 128 · KB are far below 2^31.
  constexpr int kBScaleCopies = kSwiGlu ? 2 : 1;
  const float* scale_src = nullptr;
  int scale_w_row = -1;
  if (tid < Tile::kBM) {
    scale_src = p.a_scales + (row0 + min(tid, rows - 1)) * k_groups;
  } else if (tid < Tile::kBM + kBScaleCopies) {
    // Weight row of the slot's first B tile row: the gate (or plain) rows start at tile row 0,
    // SwiGLU's up rows at tile row kWN / 2 (b_tile_row).
    scale_w_row = sm80::b_tile_row<Tile, kSwiGlu>(first_n_tile, (tid - Tile::kBM) * (Tile::kWN / 2), p.n_out);
    scale_src = p.b_scales + expert * (p.b_rows / 128) * k_groups;
  }
  const uint32_t scale_dst = smem_base + Tile::kScalesOffset + tid * 4;

  // Copies the next k-tile of the run (k-tile load_kt of column tile load_j) into `stage`.
  int load_j = 0, load_kt = 0;
  auto load_next = [&](int stage) {
    const uint32_t base = smem_base + stage * Tile::kStageBytes;
    const int k0 = load_kt * Tile::kBK;
    const uint8_t* b_run = b_base + static_cast<uint32_t>(load_j * kRunRows * p.k) + k0;
#pragma unroll
    for (int i = 0; i < Tile::kAChunks; ++i) cp_async_16(base + a_dst[i], a_base + a_src[i] + k0, a_valid[i]);
#pragma unroll
    for (int i = 0; i < Tile::kBChunks; ++i) cp_async_16(base + b_dst[i], b_run + b_src[i], true);
    if (scale_src != nullptr) {
      const int block = scale_w_row < 0 ? 0 : (scale_w_row + load_j * kRunRows) / 128;
      cp_async_4(scale_dst + stage * Tile::kScaleSlotFloats * 4, scale_src + block * k_groups + load_kt, true);
    }
    if (++load_kt == k_groups) load_kt = 0, ++load_j;
  };

  // Where this thread's scales sit in a stage's slot: its accumulator rows' A scales, and per n8
  // block the B scale of its 128-row block (SwiGLU: the warp tile's first kWN / 2 rows are gate
  // rows, the rest up rows; b_tile_row).
  const float* scale_slots = reinterpret_cast<const float*>(smem + Tile::kScalesOffset);  // [STAGES, BM + 2]
  const int lane_row = lane >> 2;
  const int sa_row = warp_m * Tile::kWM + lane_row;  // + mi * 16 + half * 8

  float acc[Tile::kMI][Tile::kNI][4];
  sm80::zero_tile<Tile>(acc);

#pragma unroll
  for (int s = 0; s < Tile::kStages - 1; ++s) {
    if (s < steps) load_next(s);
    sm80::cp_async_commit();
  }

  const int a_row = warp_m * Tile::kWM + (lane & 15), a_chunk = lane >> 4;
  const int b_row = warp_n * Tile::kWN + (lane & 7) + ((lane >> 4) << 3), b_chunk = (lane >> 3) & 1;

  for (int step = 0, kt = 0, j = 0; step < steps; ++step) {
    sm80::cp_async_wait<Tile::kStages - 2>();
    __syncthreads();
    const int next = step + Tile::kStages - 1;
    if (next < steps) load_next(next % Tile::kStages);
    sm80::cp_async_commit();

    float part[Tile::kMI][Tile::kNI][4];  // this group's sums
    sm80::zero_tile<Tile>(part);
    const uint32_t sa_smem = smem_base + (step % Tile::kStages) * Tile::kStageBytes;
    const uint32_t sb_smem = sa_smem + Tile::kBM * Tile::kRowBytes;
    // Unrolled for the decode tile only (one m16 x two n8 mma a step): its four steps' fragments
    // are then loaded ahead of their mma, so the ldmatrix latency is paid once a k-tile, not four
    // times (116 registers, no spills; 3 CTAs an SM allow 170). The wider tiles stay rolled:
    // unrolled, the compiler hoists all four steps' fragments and runs past the register file
    // (two accumulators already take 2 · kMI · kNI · 4).
#pragma unroll(Tile::kMI * Tile::kNI <= 2 ? 4 : 1)
    for (int ks = 0; ks < Tile::kBK / 32; ++ks) {
      uint32_t a[Tile::kMI][4], b[Tile::kNI][2];
#pragma unroll
      for (int mi = 0; mi < Tile::kMI; ++mi) {
        sm80::ldmatrix_x4(a[mi], sa_smem + tile_offset(a_row + mi * 16, ks * 2 + a_chunk));
      }
#pragma unroll
      for (int np = 0; np < Tile::kNI / 2; ++np) {
        uint32_t r[4];
        sm80::ldmatrix_x4(r, sb_smem + tile_offset(b_row + np * 16, ks * 2 + b_chunk));
        b[2 * np][0] = r[0];
        b[2 * np][1] = r[1];
        b[2 * np + 1][0] = r[2];
        b[2 * np + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < Tile::kMI; ++mi) {
#pragma unroll
        for (int ni = 0; ni < Tile::kNI; ++ni) mma_16832_e4m3(part[mi][ni], a[mi], b[ni][0], b[ni][1]);
      }
    }
    // This group's scales, read from the stage's slot only now: read before the mma steps they
    // stay live across them, and the mid and prefill tiles spill.
    const float* slot = scale_slots + (step % Tile::kStages) * Tile::kScaleSlotFloats;
    float sa[Tile::kMI][2], sb[Tile::kNI];
#pragma unroll
    for (int mi = 0; mi < Tile::kMI; ++mi) {
      sa[mi][0] = slot[sa_row + mi * 16];
      sa[mi][1] = slot[sa_row + mi * 16 + 8];
    }
#pragma unroll
    for (int ni = 0; ni < Tile::kNI; ++ni) {
      sb[ni] = slot[Tile::kBM + ((kSwiGlu && ni * 8 >= Tile::kWN / 2) ? 1 : 0)];
    }
#pragma unroll
    for (int mi = 0; mi < Tile::kMI; ++mi) {
#pragma unroll
      for (int ni = 0; ni < Tile::kNI; ++ni) {
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[mi][ni][c] += part[mi][ni][c] * (sa[mi][c >> 1] * sb[ni]);
      }
    }
    if (++kt < k_groups) continue;
    // Column tile j's last K group: its epilogue (the next tiles' copies in flight), a fresh sum.
    sm80::store_tile<Tile, kSwiGlu>(acc, p.out, p.n_out, row0, rows, first_n_tile + j, warp_m, warp_n, lane);
    sm80::zero_tile<Tile>(acc);
    kt = 0;
    ++j;
  }
  sm80::cp_async_wait<0>();
}

}  // namespace mlaserve::ops::sm89
