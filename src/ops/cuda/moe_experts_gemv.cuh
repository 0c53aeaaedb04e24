// The routed experts at decode sizes as a grouped GEMV: device code. Contract: ops/moe_experts.h
// (moe_experts_cuda, moe_experts_fp8_cuda with MoeExpertsPath::kGemv or kAuto); launch code in
// moe_experts_gemv.cu, when it runs and its launch shape (MoeGemvConfig) in
// moe_experts_gemv_heuristics.h, parameters in moe_experts_gemv_params.h.
//
// Symbols: P gathered rows (T·k), E experts, H hidden, Im expert intermediate, K the input width
// of a launch (H for gate_up, Im for down); expert e owns rows [offsets[e], offsets[e + 1]) of x,
// the offsets in device memory only.
//
// Why. At one token a V2-Lite MoE layer reads 6 experts' weights, 104 MB in BF16 (24.7 us at
// 4.2 TB/s) or 52 MB in e4m3 (12.4 us); the grouped GEMMs (moe_grouped_gemm_sm80.cuh and
// _fp8_sm89.cuh) take ~35 us and ~41 us. Two launches that stream each chosen expert's weights
// once, with enough bytes in flight on every SM, should run near the HBM rate.
//
// Why this shape (the second design). The first one ran one CTA per 16-row tile (~1,000 CTAs a
// launch, ~2.7 waves), each paying in series the dependency wait, the slot search (an L2 trip),
// for e4m3 the quantisation of its rows (another trip and a sync), one or two dependent trips to
// HBM for only 32-64 KB, then a reduction: latency per CTA, not bytes, set the time (36.9 us BF16,
// 40.0 us e4m3 at one V2-Lite token). Now a CTA pays those heads once for a run of tiles, and
// each warp streams its share of the whole run through a ring of loads that never drains between
// tiles.
//
// Shape of the work. Two kernels, the same template:
//   1. gate_up (kSwiGlu): hidden[r, j] = bf16(silu(g) · u), g and u the fp32 dot products of row
//      r with gate row j and up row Im + j; rounded as the grouped GEMM's epilogue
//      (swiglu.cuh, one round to bf16). A tile: gate rows j .. j + 7 and the up rows
//      of the same 8 channels (Im / 8 tiles an expert).
//   2. down: out[r, j] = bf16(hidden[r] · down row j). A tile: 16 consecutive rows (H / 16 tiles).
//   Grid (C, S): S = min(P, E) expert slots, C CTAs a slot (moe_experts_gemv.cu: about
//   MoeGemvConfig::ctas_per_sm x SMs CTAs in all, runs of at most kMoeGemvMaxTilesPerCta tiles).
//   CTA (x, s) works for the s-th expert, in expert order, whose clamped row range is non-empty
//   (expert_of_slot: every warp reads the E + 1 offsets from L2 in one trip, ballots the non-empty
//   experts 32 at a time and counts to s); slots past the number of such experts exit. It owns
//   tiles [x·tiles / C, (x + 1)·tiles / C) of that expert: a run of consecutive tiles, the runs
//   of a slot even to one tile.
//
// A CTA, for each pass of up to R = rows_per_pass (<= 8) activation rows of its expert (at decode
// sizes an expert has at most T rows: one pass):
//   a. the first kDepth pieces of each warp's weight stream are loaded (before anything else);
//   b. the pass's activation rows are staged in shared memory, bf16 copied or, for e4m3 weights,
//      quantised (the W8A8 arithmetic below; one load a lane a trip to L2, so that no wait here
//      waits for a.'s loads: quantize_rows_e4m3), each row K (+ 64 bytes of pad) apart;
//      __syncthreads;
//   c. the run's (tile, unit) pieces are dealt to the 8 warps round robin (piece i = tile · units +
//      unit to warp i mod 8, a unit being 128 bytes of a weight row: 64 bf16 or one 128-wide e4m3
//      scale group). Each warp keeps a ring of kDepth pieces in registers (MoeGemvConfig::depth):
//      it consumes piece j (the mma steps below) and in its place issues the loads of piece
//      j + kDepth, whatever tile that belongs to, so its loads stay in flight across tile
//      boundaries. When its tile changes it stores its fp32 D tile (16 weight rows x 8 activation
//      rows) to shared memory, partial[tile][warp] (zeros for a tile it had no piece of);
//   d. __syncthreads; warp w sums tiles w, w + 8, ... over the warps in order 0 .. 7
//      (deterministic for a given grid) and writes the pass's outputs.
//   e4m3 down on rows of 1, 2 or 4 pieces (K <= 512, moe_gemv_whole_tiles; a tensor-parallel
//   rank's channel share) deals whole tiles instead: warp w takes tiles w, w + 8, .. of the run,
//   each one's pieces in order, and writes each tile's outputs as it completes it: no partial
//   sums, no sync, no sum over the warps (its fp32 roundings: the note on moe_gemv_whole_tiles).
// An expert with more than R rows takes further passes, re-reading its run (from L2 if it fits).
//
// Token rows (gate_up only, MoeGemvParams::row_tokens): a is the T token rows themselves, not the
// rows gathered in expert order, and the pass's row r is token row_tokens[r]; what that saves is
// the routing kernel's gather (one CTA copying T·k rows between the router and gate_up, on the
// decode step's serial path). Two ways to stage them, the host's choice (all_tokens):
//   all tokens (T <= R): B's column c is token c, all T staged without waiting for the tokens
//     (bf16: one batch of loads); in d. row r takes the column of its token (lane r reads it before
//     b., warp 0 keeps the pass's tokens in shared memory for d.).
//   indexed: B's column j is the pass's row j, staged from a's row row_tokens[row0 + j] once the
//     tokens are read (lane j's, passed by shuffles): the gathered path's columns and end, one
//     dependent trip to L2 later; for many tokens, or e4m3 past a few, where staging all T would
//     cost more (quantising T rows where n are needed). e4m3 can take the token rows' codes and
//     scales already quantised (MoeGemvParams::a_codes: the norm's, from two tokens a step) and
//     copy them: the same bits, since the quantisation is per row and the norm's is this one's.
// Either way the same mma column for column, so the same bits as on the gathered rows.
//
// The dot products run on the tensor cores as swapped-operand mma.sync: A (16 x k) = the tile's
// weight rows, B (k x 8) = the activation rows, D (16 x 8) fp32. m16n8k16 bf16 or m16n8k32 e4m3:
// the same bytes at the same lanes (moe_grouped_gemm_fp8_sm89.cuh), so one load scheme serves
// both. The CUDA cores could not keep up with the weights in e4m3: widening 16 codes to fp32 costs
// ~24 instructions per row before the FMAs, while one mma consumes 512 bytes of the warp's loads.
//
// Loads straight into mma fragments, no shared-memory staging of the weights. A k-block is 64
// bytes of a row; lane (g, t) = (lane / 4, lane % 4) loads bytes [16t, 16t + 16) of the k-block of
// weight rows g and g + 8 (global, streaming) and of activation row g (shared; zeros for g >= the
// pass's rows). An mma step takes 8 of those bytes: [8s, 8s + 4) as the low k-slots of the A and B
// fragments (a0 row g, a1 row g + 8, b0), [8s + 4, 8s + 8) as the high ones (a2, a3, b1). A and B
// lanes with the same t use the same bytes for the same k-slots, so the mma sums the right
// products: the k order inside the instruction is permuted, the sum is the row's dot product. D's
// c0, c1 are (row g; activation rows 2t, 2t + 1), c2, c3 the same for row g + 8: with gate_up's
// tile (rows g: gate, g + 8: up of the same channel) a lane holds gate and up of its outputs. The
// activation rows' pad (64 bytes after K) puts rows g and g + 1, read by one quarter warp, in
// different banks.
//
// e4m3 weights (W8A8, the grouped FP8 GEMM's arithmetic): the pass's activation rows are quantised
// into shared memory by all 256 threads, 16 per (row, 128-wide group): amax over the group by
// shuffles, max'ed with the floor, scale and quotients by IEEE division, RNE saturating e4m3
// (fp8_quant.cuh: bit-identical to quantize_activations_fp8_cuda, so no quantiser launch). Each
// piece (one group) is summed by its 4 mma steps into a fresh fp32 tile, then promoted:
// acc += part · (a_scale[row, g] · w_scale[e, row / 128, g]), as linear_fp8_w8a8_cpu and the
// grouped FP8 GEMM; the two weight scales of a piece ride in the ring with its codes. A tile's 8
// gate and 8 up rows (or 16 down rows) each lie in one 128-row scale block (Im and H are multiples
// of 128). The hidden state goes through bf16 between the two kernels, as on the grouped path,
// and the down kernel quantises it the same way.
//
// Programmatic dependent launch (pdl.cuh). gate_up waits first thing: its expert comes from the
// offsets, written by the kernel just before it, so not even its weights can be loaded before the
// wait (so e4m3 gate_up up to 8 tokens is launched plainly: moe_gemv_gate_up_early_launch); then
// it lets the down kernel launch. The down kernel finds its expert and issues its ring's
// first weight loads (a.) before its wait: the offsets were written two kernels back (gate_up's
// CTAs all passed their wait before any down CTA could start, so those writes are visible; read
// through L2 as the grouped GEMM's down does), and no kernel of a step writes a weight. hidden,
// which gate_up writes, is read (b.) only after the wait. Every CTA, even one with no expert,
// waits before it exits.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <type_traits>

#include "ops/cuda/gemv_mma.cuh"  // mma_k_block, quantize_rows_e4m3, stage_rows_bf16, GemvMmaPos, GemvMmaRun, gemv_mma_fill_ring
#include "ops/cuda/moe_experts_gemv_heuristics.h"
#include "ops/cuda/moe_experts_gemv_params.h"
#include "ops/cuda/moe_grouped_gemm_fp8_sm89.cuh"  // sm80::clamp_rows
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/sm80_ptx.cuh"  // cp_async_16, cp_async_4
#include "ops/cuda/swiglu.cuh"
#include "ops/cuda/vec.cuh"

namespace mlaserve::ops::gpu {

inline constexpr int kMoeGemvWarps = kGemvMmaWarps;  // warps per CTA, dealt the pieces of its run
inline constexpr int kMoeGemvThreads = kGemvMmaThreads;
inline constexpr int kMoeGemvRowsPerPass = kGemvMmaRows;  // activation rows per pass at most: the mma's N
inline constexpr int kMoeGemvUnitBytes = kGemvMmaUnitBytes;  // bytes of a weight row per piece
inline constexpr int kMoeGemvGateUpChannels = 8;     // gate_up: hidden channels per tile (16 weight rows)
inline constexpr int kMoeGemvDownChannels = 16;      // down: output channels per tile
inline constexpr int kMoeGemvActPad = kGemvMmaActPad;  // bytes after each staged activation row
inline constexpr int kMoeGemvPartialBytes = kGemvMmaPartialBytes;  // a tile's partial sums (float4 a lane)
static_assert(128 % kMoeGemvGateUpChannels == 0 && 128 % kMoeGemvDownChannels == 0,
              "a tile's weight rows lie in one 128-row scale block");

// CTAs an SM the registers must allow for a ring of `depth` pieces (gemv_mma.cuh).
inline constexpr int moe_gemv_min_ctas_per_sm(int depth) { return gemv_mma_min_ctas_per_sm(depth); }

// Dynamic shared memory, in order: e4m3 only, activation scales [rows][K / 128] f32 (rounded up to
// 16 bytes); `rows` staged activation rows (e4m3 codes or bf16), moe_gemv_act_stride bytes apart;
// partial sums [max_tiles][8 warps][32 lanes] float4.
__host__ __device__ inline constexpr int64_t moe_gemv_act_stride(int64_t k, bool fp8) {
  return k * (fp8 ? 1 : 2) + kMoeGemvActPad;
}
__host__ __device__ inline constexpr int64_t moe_gemv_scale_bytes(int64_t k, int64_t rows, bool fp8) {
  return fp8 ? (rows * (k / 128) * 4 + 15) / 16 * 16 : 0;
}
__host__ __device__ inline constexpr int64_t moe_gemv_act_bytes(int64_t k, int64_t rows, bool fp8) {
  return moe_gemv_scale_bytes(k, rows, fp8) + rows * moe_gemv_act_stride(k, fp8);
}
__host__ __device__ inline constexpr int64_t moe_gemv_smem_bytes(int64_t k, int64_t rows, int64_t max_tiles, bool fp8) {
  return moe_gemv_act_bytes(k, rows, fp8) + max_tiles * kMoeGemvPartialBytes;
}

struct ExpertSlot {
  int expert;      // < 0: fewer experts have rows than the slot's index
  int begin, end;  // its rows, clamped to [0, P] (sm80::clamp_rows)
};

// The slot-th expert (counting from 0, in expert order) whose clamped row range is non-empty.
// Every lane of the warp calls it and gets the same answer. Lane l reads offsets[32c + l] for
// 8 chunks c at a time (E <= 256: one batch, one trip to L2, ld.global.cg); the end of an expert's
// range is the next lane's value (lane 31: the next chunk's first).
__device__ __forceinline__ ExpertSlot expert_of_slot(const int32_t* offsets, int num_experts, int num_rows,
                                                     int slot) {
  constexpr int kBatch = 8;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  int remaining = slot;
  for (int c0 = 0; c0 * 32 < num_experts; c0 += kBatch) {
    int o[kBatch + 1];  // o[c] = offsets[32 (c0 + c) + lane], o[kBatch] = offsets[32 (c0 + kBatch)] (clamped to E)
#pragma unroll
    for (int c = 0; c < kBatch; ++c) o[c] = __ldcg(offsets + min((c0 + c) * 32 + lane, num_experts));
    o[kBatch] = __ldcg(offsets + min((c0 + kBatch) * 32, num_experts));
#pragma unroll
    for (int c = 0; c < kBatch; ++c) {
      const int first_of_next = __shfl_sync(kFullMask, o[c + 1], 0);
      int next = __shfl_down_sync(kFullMask, o[c], 1);
      if (lane == 31) next = first_of_next;
      int begin, end;
      sm80::clamp_rows(o[c], next, num_rows, begin, end);
      const bool has_rows = (c0 + c) * 32 + lane < num_experts && end > begin;
      unsigned mask = __ballot_sync(kFullMask, has_rows);
      const int count = __popc(mask);
      if (remaining < count) {  // warp-uniform
        for (int i = 0; i < remaining; ++i) mask &= mask - 1;
        const int src = __ffs(static_cast<int>(mask)) - 1;
        return {(c0 + c) * 32 + src, __shfl_sync(kFullMask, begin, src), __shfl_sync(kFullMask, end, src)};
      }
      remaining -= count;
    }
  }
  return {-1, 0, 0};
}

// The e4m3 codes and scales of a pass's n token rows, already quantised (MoeGemvParams::a_codes),
// copied into shared memory as quantize_rows_e4m3<1, false, true> would write them: the j-th row is
// token lane_token of the warp's lane j; codes [T, k], scales [T, k / 128] (k / 128 <= the CTA's
// threads: one scale a thread). cp.async: nothing passes through registers; waited for here, made
// visible by the caller's __syncthreads.
__device__ __forceinline__ void stage_codes_async(const uint8_t* codes, const float* scales, int k, int n,
                                                  uint8_t* acts, int stride, float* act_scales, int lane_token) {
  const int chunks = k / 16, groups = k / 128;  // 16-byte chunks and scales a row
#pragma unroll 1
  for (int j = 0; j < n; ++j) {
    const int row = __shfl_sync(kFullMask, lane_token, j);
#pragma unroll 1
    for (int c = static_cast<int>(threadIdx.x); c < chunks; c += kMoeGemvThreads) {
      sm80::cp_async_16(sm80::smem_u32(acts + j * stride + 16 * c), codes + int64_t{row} * k + 16 * c, true);
    }
    const int q = static_cast<int>(threadIdx.x);
    if (q < groups) {
      sm80::cp_async_4(sm80::smem_u32(act_scales + j * groups + q), scales + int64_t{row} * groups + q, true);
    }
  }
  sm80::cp_async_commit();
  sm80::cp_async_wait<0>();
}

// grid (ctas a slot, min(P, E)), block kMoeGemvThreads, dynamic shared memory moe_gemv_smem_bytes
// (K, p.rows_per_pass, p.max_tiles_per_cta, kFp8; no partial sums with kWholeTiles); launched with
// launch_programmatic (gate_up: or plainly, moe_gemv_gate_up_early_launch). kCodes: e4m3 gate_up
// copying the token rows' codes (p.a_codes; indexed), a kernel of its own so that the others keep
// their registers. kWholeTiles: e4m3 down dealing whole tiles (moe_gemv_whole_tiles).
template <bool kFp8, bool kSwiGlu, int kDepth, bool kCodes = false, bool kWholeTiles = false>
__global__ void __launch_bounds__(kMoeGemvThreads, moe_gemv_min_ctas_per_sm(kDepth))
    moe_experts_gemv_kernel(const MoeGemvParams p) {
  static_assert(kDepth >= 1 && kDepth <= 8, "ring depth");
  static_assert(!kCodes || (kFp8 && kSwiGlu), "codes are e4m3 gate_up's");
  static_assert(!kWholeTiles || (kFp8 && !kSwiGlu), "whole tiles are e4m3 down's");
  extern __shared__ __align__(16) uint8_t smem[];  // see moe_gemv_smem_bytes
  __shared__ int pass_tokens[kMoeGemvRowsPerPass];  // token rows: the token of each row of the pass
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, t = lane % 4;
  constexpr int kElemBytes = kFp8 ? 1 : 2;
  constexpr int kTileRows = kSwiGlu ? kMoeGemvGateUpChannels : kMoeGemvDownChannels;  // tile to tile, in rows
  const int64_t row_bytes = int64_t{p.k} * kElemBytes;  // of a weight row
  const int units = static_cast<int>(row_bytes / kMoeGemvUnitBytes);
  const int groups = p.k / 128;

  if constexpr (kSwiGlu) {  // the expert comes from offsets the kernel just before wrote
    grid_dependency_wait();
    launch_dependents();
  }
  const ExpertSlot slot = expert_of_slot(p.expert_offsets, p.num_experts, p.num_rows, static_cast<int>(blockIdx.y));

  // This CTA's run: tiles [tile0, tile0 + n_tiles) of the expert; the warp's pieces of it.
  const GemvMmaRun run(p.tiles, units);
  const int tile0 = run.tile0, n_tiles = run.n_tiles;
  const int my_pieces = kWholeTiles ? GemvMmaTilePos::pieces(warp, n_tiles, units) : run.my_pieces;

  // Lane (g, t)'s bytes of local tile 0: row g (w_lo) and row g + 8 of the tile, which is the up
  // row of the same channel for gate_up (Im rows further) and the next 8 rows' for down.
  const int64_t expert = slot.expert < 0 ? 0 : slot.expert;
  const uint8_t* w_lo =
      static_cast<const uint8_t*>(p.w) + (expert * p.w_rows + int64_t{tile0} * kTileRows + g) * row_bytes + 16 * t;
  const int64_t hi_bytes = int64_t{kSwiGlu ? p.n_out : 8} * row_bytes;
  const int64_t tile_bytes = int64_t{kTileRows} * row_bytes;
  // e4m3: the weight scales of the expert's 128-row blocks, [w_rows / 128][groups]; a tile's low
  // rows lie in block (tile0 + tile) · kTileRows / 128, its high rows in that + Im / 128 (gate_up)
  // or the same (down).
  const float* w_scales = kFp8 ? p.w_scales + expert * (p.w_rows / 128) * groups : nullptr;
  const int hi_block = kSwiGlu ? p.n_out / 128 : 0;

  uint4 ring[kDepth][2][2];  // [piece][k-block][row g, row g + 8], this lane's 16 bytes of each
  float ring_ws[kDepth][2];  // e4m3: the piece's weight scales (rows g, g + 8)
  using Pos = std::conditional_t<kWholeTiles, GemvMmaTilePos, GemvMmaPos>;  // a warp's place in its pieces
  const auto load_piece = [&](int s, const Pos& at) {
    const uint8_t* lo = w_lo + at.tile * tile_bytes + at.unit * kMoeGemvUnitBytes;
#pragma unroll
    for (int kb = 0; kb < 2; ++kb) {
      ring[s][kb][0] = __ldcs(reinterpret_cast<const uint4*>(lo + kb * 64));
      ring[s][kb][1] = __ldcs(reinterpret_cast<const uint4*>(lo + hi_bytes + kb * 64));
    }
    if constexpr (kFp8) {
      const int block = (tile0 + at.tile) * kTileRows / 128;
      ring_ws[s][0] = __ldg(w_scales + block * groups + at.unit);
      ring_ws[s][1] = __ldg(w_scales + (block + hi_block) * groups + at.unit);
    }
  };
  Pos start = kWholeTiles ? Pos{warp, 0} : Pos{0, warp};
  if constexpr (!kWholeTiles) start.normalise(units);
  Pos load_at = start;
  const auto prologue = [&] {  // a.: the ring's first pieces
    load_at = start;
    gemv_mma_fill_ring<kDepth>(my_pieces, units, load_at, load_piece);
  };

  // The first pass's weights: the down kernel before its wait (the note at the top), gate_up now.
  if (slot.expert >= 0) prologue();
  if constexpr (!kSwiGlu) {
    grid_dependency_wait();
    launch_dependents();
  }
  if (slot.expert < 0) return;  // the whole CTA: the slot is the same in every warp

  float* act_scales = reinterpret_cast<float*>(smem);  // e4m3: [rows_per_pass][groups]
  uint8_t* acts = smem + moe_gemv_scale_bytes(p.k, p.rows_per_pass, kFp8);
  const int act_stride = static_cast<int>(moe_gemv_act_stride(p.k, kFp8));
  float4* partial =  // [max_tiles][warps][32]
      reinterpret_cast<float4*>(acts + int64_t{p.rows_per_pass} * act_stride);
  const auto store_partial = [&](int tile, float4 v) { partial[(tile * kMoeGemvWarps + warp) * 32 + lane] = v; };

  // gate_up reading the token rows (row_tokens), all T as B's columns or indexed (the note at the top).
  const bool token_rows = kSwiGlu && p.row_tokens != nullptr, all_tokens = token_rows && p.all_tokens;
  for (int row0 = slot.begin; row0 < slot.end; row0 += p.rows_per_pass) {
    const int n = min(p.rows_per_pass, slot.end - row0);  // this pass's rows of the expert
    // down: lane (g, t)'s sums of local tile `tile` (rows g, g + 8; the pass's rows 2t, 2t + 1) out.
    const auto store_down_tile = [&](int tile, const float(&sum)[4]) {
      const int channel = (tile0 + tile) * kTileRows + g;
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int col = 2 * t + c;
        if (col >= n) continue;
        __nv_bfloat16* out_row = p.out + int64_t{row0 + col} * p.n_out;
        out_row[channel] = __float2bfloat16_rn(sum[c]);
        out_row[channel + 8] = __float2bfloat16_rn(sum[2 + c]);
      }
    };
    if (row0 != slot.begin) {
      __syncthreads();  // the last pass's shared memory has been read
      prologue();
    }
    // Lane j < n: the token of the pass's row j (one token: 0, no load); all tokens: kept for d.
    const int row_token =
        token_rows && lane < n ? (p.num_tokens == 1 ? 0 : __ldcg(p.row_tokens + row0 + lane)) : -1;
    if (all_tokens && warp == 0 && lane < n) pass_tokens[lane] = row_token;
    // B's columns: rows row0 .. row0 + n - 1 of a, tokens 0 .. T - 1 (all tokens) or a's rows of the
    // pass's tokens (indexed).
    const bool indexed = token_rows && !all_tokens;
    const int staged = all_tokens ? p.num_tokens : n, staged0 = token_rows ? 0 : row0;
    if constexpr (kFp8) {  // b.
      if constexpr (kCodes) {
        stage_codes_async(p.a_codes, p.a_scales, p.k, n, acts, act_stride, act_scales, row_token);
      } else if (indexed) {
        quantize_rows_e4m3<1, false, true>(p.a, p.k, p.amax_floor, p.ue8m0, 0, n, act_scales, acts, act_stride,
                                           row_token);
      } else {
        quantize_rows_e4m3<1, false>(p.a, p.k, p.amax_floor, p.ue8m0, staged0, staged, act_scales, acts, act_stride);
      }
    } else {
      if (indexed) {
        stage_rows_bf16_async<true>(p.a, p.k, n, acts, act_stride, row_token);
      } else {
        stage_rows_bf16(p.a, p.k, staged0, staged, acts, act_stride);
      }
    }
    __syncthreads();

    // c. The stream: consume ring slot s, refill it with the piece kDepth further on.
    const bool has_row = g < staged;  // activation row g of the pass (B column g)
    const uint8_t* act_row = acts + (has_row ? g : 0) * act_stride + 16 * t;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // D: (row g; cols 2t, 2t + 1), (row g + 8; the same)
    int cur_tile = kWholeTiles ? start.tile : 0;  // the tile acc belongs to
    Pos use_at = start;
    for (int j0 = 0; j0 < my_pieces; j0 += kDepth) {
#pragma unroll
      for (int s = 0; s < kDepth; ++s) {
        if (j0 + s >= my_pieces) break;  // warp-uniform
        if (use_at.tile != cur_tile) {   // warp-uniform: acc is complete for cur_tile
          if constexpr (kWholeTiles) {
            store_down_tile(cur_tile, acc);
          } else {
            store_partial(cur_tile, make_float4(acc[0], acc[1], acc[2], acc[3]));
            for (int x = cur_tile + 1; x < use_at.tile; ++x) store_partial(x, make_float4(0.0f, 0.0f, 0.0f, 0.0f));
          }
          cur_tile = use_at.tile;
          acc[0] = acc[1] = acc[2] = acc[3] = 0.0f;
        }
        const int u = use_at.unit;
        if constexpr (kFp8) {
          const float as0 = 2 * t < staged ? act_scales[2 * t * groups + u] : 0.0f;
          const float as1 = 2 * t + 1 < staged ? act_scales[(2 * t + 1) * groups + u] : 0.0f;
          float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // this group's sums
#pragma unroll
          for (int kb = 0; kb < 2; ++kb) {
            const uint4 codes = has_row ? *reinterpret_cast<const uint4*>(act_row + u * kMoeGemvUnitBytes + kb * 64)
                                        : make_uint4(0, 0, 0, 0);
            mma_k_block<true>(part, ring[s][kb][0], ring[s][kb][1], codes);
          }
          const float ws_lo = ring_ws[s][0], ws_hi = ring_ws[s][1];
          acc[0] += part[0] * (as0 * ws_lo);
          acc[1] += part[1] * (as1 * ws_lo);
          acc[2] += part[2] * (as0 * ws_hi);
          acc[3] += part[3] * (as1 * ws_hi);
        } else {
#pragma unroll
          for (int kb = 0; kb < 2; ++kb) {
            const uint4 av = has_row ? *reinterpret_cast<const uint4*>(act_row + u * kMoeGemvUnitBytes + kb * 64)
                                     : make_uint4(0, 0, 0, 0);
            mma_k_block<false>(acc, ring[s][kb][0], ring[s][kb][1], av);
          }
        }
        use_at.advance(units);
        if (j0 + s + kDepth < my_pieces) {
          load_piece(s, load_at);
          load_at.advance(units);
        }
      }
    }
    if constexpr (kWholeTiles) {  // the warp's last tile; no partial sums, so no sum over the warps
      if (my_pieces > 0) store_down_tile(cur_tile, acc);
      continue;
    }
    // A warp with no piece stores zeros for tile 0.
    store_partial(cur_tile, make_float4(acc[0], acc[1], acc[2], acc[3]));
    for (int x = cur_tile + 1; x < n_tiles; ++x) store_partial(x, make_float4(0.0f, 0.0f, 0.0f, 0.0f));
    __syncthreads();

    // d. The sum over the warps (in order); lane (g, t) has activation rows 2t and 2t + 1 of the
    // tile's weight rows g and g + 8.
    for (int tile = warp; tile < n_tiles; tile += kMoeGemvWarps) {
      float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
      for (int w = 0; w < kMoeGemvWarps; ++w) {
        const float4 v = partial[(tile * kMoeGemvWarps + w) * 32 + lane];
        sum[0] += v.x;
        sum[1] += v.y;
        sum[2] += v.z;
        sum[3] += v.w;
      }
      if constexpr (kSwiGlu) {
        const int channel = (tile0 + tile) * kTileRows + g;  // output column of weight row g
        if (all_tokens) {  // row j of the pass from the column of its token, held by lanes t = that / 2
          for (int j = 0; j < n; ++j) {  // warp-uniform
            const int col = pass_tokens[j] - 2 * t;
            if (col != 0 && col != 1) continue;
            const float gate = col == 0 ? sum[0] : sum[1], up = col == 0 ? sum[2] : sum[3];
            p.out[int64_t{row0 + j} * p.n_out + channel] = __float2bfloat16_rn(swiglu(gate, up));
          }
          continue;
        }
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int col = 2 * t + c;
          if (col >= n) continue;
          const float gate = sum[c], up = sum[2 + c];
          p.out[int64_t{row0 + col} * p.n_out + channel] = __float2bfloat16_rn(swiglu(gate, up));
        }
      } else {
        store_down_tile(tile, sum);
      }
    }
  }
}

}  // namespace mlaserve::ops::gpu
