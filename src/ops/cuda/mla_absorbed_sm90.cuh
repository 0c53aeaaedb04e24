// The absorbed MLA attention of a decode step with one query token a sequence, 16 to 128 heads
// (a multiple of 16) and up to 8 sequences, in ONE kernel on Hopper (sm_90a): the absorption
// q_abs[h] = W_UK[h]ᵀ q_nope[h], the attention over the paged latent cache, and the
// up-projection o[h] = W_UV[h] o_lat[h].
// Contract: ops/mla_absorbed_attention.h; launch code: mla_absorbed_sm90.cu.
//
// Why. At batch 1 (V2-Lite, 1024 tokens, H200) the three kernels of the absorbed path cost
// 15.4 us a layer for 1.2 us of bytes: each waits for the previous one, and the decode merges its
// split sequences through global memory. Here the weights' trip to HBM overlaps the kernels
// before (programmatic dependent launch), and the query tile, the attention's pieces and the
// latent output meet in distributed shared memory.
//
// Shape of the work. Grid (16, B G) for n = 16 G heads, thread-block clusters of (16, 1, 1):
// cluster G b + g is head group g (heads 16 g .. 16 g + 15) of sequence b (query row b), its CTA
// rank r owns head 16 g + r. Each head group attends over the whole sequence as a model of 16
// heads would (the G clusters of a sequence read the same cache blocks, all but the first from
// L2). G = 2 and 4 are V2 / V3 under TP4 and TP2, where the H200's 7 clusters of 16 hold B <= 3
// and B = 1 sequences. 256 threads (8 warps), 200 KB of shared memory (one CTA an SM), 254
// registers a thread, no spills (ptxas -v, CUDA 13.0). Per CTA:
//   1. Before griddepcontrol.wait (weights only, and with early_loads what kernels two or more
//      back wrote; pdl.cuh's rule): W_UK[h] [128 x 512] into registers, thread i owning columns
//      2i, 2i + 1 of every row (128 registers, dead after step 3); an L2 prefetch of W_UV[h]
//      (128 KB, one 1 KB row a thread of the first 128); with early_loads the sequence's length,
//      the CTA's blocks and the first block's copy. Wait; launch_dependents.
//   2. Absorption of head h: q_nope[h] through shared memory, row group rg's 8 rows in one 16-byte
//      vector (all 128 values read at once would not fit beside W_UK); column c's sum is that of
//      mla_absorb_gemv_kernel: 16 partial sums over rows d = g, g + 16, .. (fmaf chains from 0, g
//      < 16), added in g order from 0, rounded once to bf16. With p.positions, q_pe's pair i is
//      rotated by thread i (rope.cu's arithmetic and rounding; the position's cos and sin read
//      before the wait), so that the RoPE kernel leaves the query chain. The 576-wide row [q_abs |
//      q_pe] goes to row h of this CTA's query tile, then to the same place in EVERY other CTA's tile by
//      16-byte st.async (one warp instruction a destination), after a cluster barrier whose
//      arrival was at the kernel's start (every CTA has started: its shared memory and barriers
//      may be written). Each CTA waits on its own receipt barrier for the other 15 rows: then it
//      holds the 16 x 576 query tile. (4-byte st.shared::cluster from every thread and a cluster
//      barrier took ~0.3 us a layer more; bench/NOTES-engine.md, twenty-second session.)
//   3. The attention over the CTA's blocks [h nb / 16, (h + 1) nb / 16) of the sequence's
//      nb = ceil(seq_len / 64), as the "narrow" MLA decode kernel measured in
//      bench/NOTES-mla-decode.md (sixteenth session; it never ran alone on main; Q K^T here in
//      kFusedScoreSets accumulator sets, not its 4, for the registers):
//      Q to registers as mma.sync m16n8k16 A fragments (144 registers), a cp.async
//      2-stage KV ring on mbarriers, online softmax in fp32 (log2 units), P in bf16, P V over
//      8 warps of 64 channels. A CTA without blocks (nb < 16) has m = -inf, l = 0, O = 0.
//      Its state is pushed, not pulled: row x of O (unnormalised) with the row's m and l is staged
//      over the stages (2,064 bytes), then one warp copies it by 16-byte st.async into slot h of
//      the receive buffer of the CTA that merges row x, each store completing its bytes on that
//      CTA's receive mbarrier. No cluster barrier: a receiver waits only for its own 16 x 2,064
//      bytes. (Pulling them after a cluster barrier, 48 ld.shared::cluster a thread, took 3.8 us
//      at batch 1; bench/NOTES-engine.md, twenty-second session. Bulk DSMEM copies of the staged
//      rows were as fast and failed compute-sanitizer memcheck.)
//   4. Merge by head: CTA h merges row h (thread i: channels 2i, 2i + 1) over the 16 CTAs'
//      states from its receive buffer:
//        M = max_k m_k,  L = sum_k 2^(m_k - M) l_k,  o_lat = sum_k 2^(m_k - M) O_k / L,
//      rounded to bf16 (as mla_decode writes out) into its own shared memory.
//   5. Up-projection of head h: warp w computes rows j = 16 w .. 16 w + 15 of W_UV[h], read from
//      shared memory: once its state is sent, one thread bulk-copies the CTA's rows of W_UV[h]
//      (prefetched into L2 in step 1) over the stages and the query tile. 8 rows in flight; lane l
//      takes columns 8 l .. + 7 and 256 + 8 l .. + 7, fmaf chains and a butterfly warp sum as
//      mla_up_gemv_kernel: the same bits for the same o_lat.
//
// Head halves (kHalves, where the GPU holds 2 B G clusters: B <= 3 at G = 1 on an H200). Two
// clusters a head group, one for its heads 0-7 and one for its heads 8-15; the CTA pair 2j, 2j + 1 of a cluster owns
// its head j: each absorbs one half of the latent columns (256 of W_UK[h]'s 512), and each
// up-projects one half of the outputs (64 rows of W_UV[h]). An SM then streams 192 KB of weights,
// not 384 KB, on the step's serial path; the cache is read by both clusters (the second time
// mostly from L2), and the query tile's rows 8-15 are zero. Each head's sums are the same
// operations in the same order: the same bits as one cluster a sequence. H200, V2-Lite decode
// step (bench/NOTES-engine.md, twenty-second session), graph ms, one cluster / halves: BF16 batch 1
// 1.987, 1.983 / 1.928, 1.942; batch 2 2.590, 2.579 / 2.528, 2.558; FP8 batch 2 2.266, 2.262 /
// 2.209, 2.207.
//
// Shared memory (byte offsets from a 16-byte aligned base):
//   KV stages 2 x [64 keys][1168 B] | query tile [16][1168 B] | received states [16 peers][2064 B]
//   | P [16][144 B] bf16 | row maxima [8 warps][16] f32 | per-warp row sums [8 warps][16] f32 |
//   m [16] f32 | 5 mbarriers (KV stages, states received, W_UV, query tile received).
// After the last block the states to send [16 rows][2064 B] and then W_UV's rows (up to 128 KB)
// lie over the stages and the query tile. The receive buffer has its own space: a peer without
// blocks pushes its state while this CTA may still read its query tile or KV stages. The P tile
// holds q_nope[h] [16][8] bf16 during the absorption and o_lat[h] [512] bf16 during the
// up-projection. Row paddings as the narrow kernel (ldmatrix rows in 8 different 16-byte bank
// groups).
//
// PDL: the kernel just before (RoPE in the model, or the query projection when the kernel
// rotates q itself) writes q, read only after the wait.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/mla_absorbed_sm90.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/reduce.cuh"
#include "ops/cuda/rope_pair.cuh"
#include "ops/cuda/sm80_ptx.cuh"
#include "ops/cuda/sm90_ptx.cuh"
#include "ops/cuda/vec.cuh"

namespace mlaserve::ops::sm90 {

inline constexpr int kFusedThreads = 256;               // 8 warps
inline constexpr int kFusedWarps = kFusedThreads / 32;
// KV blocks in shared memory: two stages, a ring over the CTA's blocks (the model sends up to 4,096
// tokens: 64 blocks over 16 CTAs, mla_absorbed_max_seq_len).
inline constexpr int kFusedStages = 2;
inline constexpr int kFusedRowChunks = 72;              // 16-byte chunks of a 576-wide bf16 row
inline constexpr int kFusedRowBytes = 16 * kFusedRowChunks + 16;  // padded cache / query row
inline constexpr int kFusedPRowBytes = 64 * 2 + 16;     // padded P row: 64 keys bf16
inline constexpr int kFusedQSteps = 36;                 // k16 steps over the 576 channels
inline constexpr int kFusedUpRowsInFlight = 8;          // W_UV rows a warp loads before its FMAs
// Accumulator sets of Q K^T (the chain of 36 mma is 36 / sets deep). The narrow kernel had 4; here
// 4 spill 8 bytes (ptxas, CUDA 13.0: two P V addresses reloaded from L1 once a block, before a
// barrier), 2 spill nothing at 254 registers for a chain of 18 instead of 9 (about 0.15 us a
// block more at ~30 cycles an mma). Measured in the decode step (one H200, 2026-11-29,
// bench/NOTES-engine.md 22:10; V2-Lite BF16 batch 1 / 8, ms, 2 sets / 4): 2.113, 2.107 / 2.107,
// 2.109 and 5.866, 5.874 / 5.873, 5.867, a tie, so 2 (no spill).
inline constexpr int kFusedScoreSets = 2;
static_assert(kFusedWarps * 8 == 64 && kFusedWarps * 64 == kFusedLatent,
              "a warp takes 8 keys of a block in Q K^T and 64 of the 512 channels in P V");
static_assert(2 * kFusedThreads == kFusedLatent, "a thread owns 2 latent channels in the absorption and the merge");
static_assert(kFusedQSteps % kFusedScoreSets == 0, "every set takes as many k16 steps");
static_assert(kFusedWarps * 16 == kFusedValue, "a warp owns 16 rows of W_UV in the up-projection (8 with halves)");

// Shared-memory map (byte offsets; 16-byte aligned base).
struct FusedSmem {
  static constexpr int kStageBytes = 64 * kFusedRowBytes;
  static constexpr int kKv = 0;                                        // [2][64][1168 B]
  static constexpr int kQ = kKv + kFusedStages * kStageBytes;          // [16][1168 B]
  static constexpr int kState = kFusedLatent * 4 + 16;                 // a row's O [512] f32, m, l, 0, 0
  static constexpr int kSend = kKv;                                    // [16 rows][kState] over the stages
  static constexpr int kWuv = kSend + kFusedHeads * kState;            // [<= 128][512] bf16: W_UV[h]'s rows
  static constexpr int kRecv = kQ + kFusedHeads * kFusedRowBytes;      // [16 peers][kState]: the merged row's
  static constexpr int kP = kRecv + kFusedHeads * kState;              // [16][144 B] bf16
  static constexpr int kQNope = kP;                                    // [16][8] bf16 over P (absorption)
  static constexpr int kOLat = kP;                                     // [512] bf16 over P (up-projection)
  static constexpr int kRowMax = kP + kFusedHeads * kFusedPRowBytes;   // [8 warps][16] f32
  static constexpr int kWarpSum = kRowMax + kFusedWarps * 16 * 4;      // [8 warps][16] f32
  static constexpr int kM = kWarpSum + kFusedWarps * 16 * 4;           // [16] f32, log2 units
  static constexpr int kBarriers = kM + kFusedHeads * 4;  // KV stages 0, 1; receipt; W_UV; query tile
  static constexpr int kBytes = kBarriers + (kFusedStages + 3) * 8;
};
inline constexpr int kFusedSmemBytes = FusedSmem::kBytes;
static_assert(kFusedSmemBytes <= 227 * 1024, "over the sm_90 shared-memory limit per CTA");
static_assert(FusedSmem::kWuv + kFusedValue * kFusedLatent * 2 <= FusedSmem::kRecv,
              "the states sent and W_UV fit over the KV stages and the query tile");
static_assert(kFusedNope * 2 <= kFusedHeads * kFusedPRowBytes && kFusedLatent * 2 <= kFusedHeads * kFusedPRowBytes,
              "q_nope and o_lat fit over P");
static_assert(64 * kFusedRowChunks % kFusedThreads == 0, "every thread copies as many chunks of a block");

// Starts the copy of cache block `block_id` ([64 x 576] bf16, 72 KB contiguous) into the stage at
// dst; rows valid .. 63 are zero-filled (nothing read). All kFusedThreads threads (thread tid),
// each arriving on bar when its copies have landed. Thread i's 16 bytes are the block's bytes
// 16 (i + 256 k): every warp's request is 512 contiguous bytes.
__device__ __forceinline__ void fused_load_kv(const MlaAbsorbedParams& p, uint32_t dst, int block_id, int valid,
                                              uint32_t bar, int tid) {
  const uint8_t* src = reinterpret_cast<const uint8_t*>(p.kv_cache) + static_cast<int64_t>(block_id) * 64 * 1152;
#pragma unroll
  for (int k = 0; k < 64 * kFusedRowChunks / kFusedThreads; ++k) {
    const int i = tid + kFusedThreads * k, row = i / kFusedRowChunks;  // chunk i of the block
    sm80::cp_async_16(dst + 16 * (i + row), src + (row < valid ? 16 * i : 0), row < valid);
  }
  ptx::cp_async_arrive_noinc(bar);
}

// The max over the 4 threads of a quad (lanes 4k .. 4k + 3 hold one row's keys).
__device__ __forceinline__ float fused_quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

// ---- the kernel ------------------------------------------------------------------------------

// Grid (16, B G), clusters of (16, 1, 1), kFusedThreads threads, kFusedSmemBytes of dynamic shared
// memory; launched with programmatic dependent launch. kHalves: grid (16, 2 B G), two clusters a
// head group by head halves ("Head halves" at the top): cluster 2 (G b + g) + c holds the group's heads
// 8c .. 8c + 7 in rows 0-7 of its query tile (rows 8-15 zero); CTA rank r absorbs its head r/2's latent half r % 2,
// attends over blocks share r as without halves, merges row r/2 over all 512 channels (both CTAs
// of the pair receive the row's states) and up-projects output half r % 2. Every head's arithmetic
// is the same: the same bits as without halves.
// Fragment notation: lane = 4 g + t; an m16n8 accumulator holds (row g, columns 2t, 2t + 1) and
// (row g + 8, the same columns).
template <bool kHalves>
__global__ void __launch_bounds__(kFusedThreads, 1)
    mla_absorbed_sm90_kernel(const __grid_constant__ MlaAbsorbedParams p) {
  extern __shared__ __align__(16) uint8_t smem[];
  float* row_max = reinterpret_cast<float*>(smem + FusedSmem::kRowMax);   // [8][16]
  float* warp_sum_s = reinterpret_cast<float*>(smem + FusedSmem::kWarpSum);  // [8][16]
  float* m_s = reinterpret_cast<float*>(smem + FusedSmem::kM);            // [16]
  __nv_bfloat16* q_nope = reinterpret_cast<__nv_bfloat16*>(smem + FusedSmem::kQNope);  // [16 rg][8] bf16
  uint8_t* p_tile = smem + FusedSmem::kP;                                 // [16][144 B]

  // kSplit clusters a sequence, CTAs a head; kRows heads (query tile rows) a cluster.
  constexpr int kSplit = kHalves ? 2 : 1, kRows = kFusedHeads / kSplit;
  constexpr int kAbsorbThreads = kFusedThreads / kSplit;  // threads holding W_UK columns
  constexpr int kUpRows = kFusedValue / kSplit;           // W_UV rows (outputs) of the CTA
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  // rank: the CTA's share of the KV blocks; head: whose W_UK part, query row and output it owns;
  // row: that head's row of the cluster's query tile and states; half: its latent / output part.
  // blockIdx.y = (seq G + group) kSplit + c: head group `group` (heads 16 group ..) of sequence seq,
  // its heads' half c with halves.
  const int rank = static_cast<int>(blockIdx.x), cluster_y = static_cast<int>(blockIdx.y);
  const int seq = cluster_y / kSplit / p.groups, heads = kFusedHeads * p.groups;
  const int row = rank / kSplit, half = rank % kSplit;
  const int head = kFusedHeads * (cluster_y / kSplit % p.groups) + kRows * (cluster_y % kSplit) + row;
  const uint32_t s_kv = sm80::smem_u32(smem + FusedSmem::kKv), s_q = sm80::smem_u32(smem + FusedSmem::kQ);
  const uint32_t s_p = sm80::smem_u32(p_tile);
  const uint32_t bar_kv = sm80::smem_u32(smem + FusedSmem::kBarriers);  // stage s: bar_kv + 8 s
  const uint32_t bar_recv = bar_kv + 8 * kFusedStages;  // the peers' states for this CTA's merge
  const uint32_t bar_wuv = bar_recv + 8;                // W_UV's rows in shared memory
  const uint32_t bar_q = bar_wuv + 8;                   // the other CTAs' pieces of the query tile
  // W_UK[h] [128, 512] and W_UV[h] [128, 512]; computed where used (no registers held across the loop).
  auto w_uk = [&]() { return p.w_kv_b + int64_t{head} * (kFusedNope + kFusedValue) * kFusedLatent; };
  auto w_uv = [&]() { return w_uk() + kFusedNope * kFusedLatent; };

  if (tid == 0) {
#pragma unroll
    for (int s = 0; s < kFusedStages; ++s) ptx::mbarrier_init(bar_kv + 8 * s, kFusedThreads);
    ptx::mbarrier_init(bar_recv, 1);
    ptx::mbarrier_init(bar_wuv, 1);
    ptx::mbarrier_init(bar_q, 1);
    ptx::mbarrier_init_fence();
    ptx::mbarrier_arrive_expect_bytes(bar_recv, kFusedHeads * FusedSmem::kState);  // 16 peers' row states
    // The query tile's head rows less this CTA's piece (q_abs part, and q_pe with latent part 0).
    const int own = 4 * kAbsorbThreads + (half == 0 ? 2 * kFusedRope : 0);
    ptx::mbarrier_arrive_expect_bytes(bar_q, kRows * 2 * (kFusedLatent + kFusedRope) - own);
  }
  __syncthreads();
  ptx::cluster_arrive_relaxed();  // this CTA has started; waited for before the first DSMEM store

  // Weights before the wait: W_UK[h] columns 2 tid, 2 tid + 1 of every row (with halves, threads
  // tid < 128 columns 256 half + 2 tid, + 1); W_UV[h]'s rows this CTA projects into L2.
  uint32_t wk[kFusedNope];
#pragma unroll
  for (int d = 0; d < kFusedNope; ++d) {
    const unsigned int* w_row = reinterpret_cast<const unsigned int*>(w_uk() + d * kFusedLatent);
    wk[d] = kSplit == 1 || tid < kAbsorbThreads ? __ldcs(w_row + kAbsorbThreads * half + tid) : 0u;
  }
  if (tid < kUpRows) gpu::prefetch_l2(w_uv() + (kUpRows * half + tid) * kFusedLatent, kFusedLatent * 2);
  // The query's RoPE (p.positions): thread tid < 32 rotates q_pe's pair tid; its position's cos and
  // sin before the wait (the step's metadata and a table: no kernel of the step writes them).
  gpu::RopeAngle rope;  // rope_pair.cuh
  if (p.positions != nullptr && tid < kFusedRope / 2) {
    const int64_t pos = gpu::load_index(p.positions, p.positions_i64, seq);
    rope = gpu::rope_angle(p.cos_sin, p.num_positions, kFusedRope / 2, pos, tid);
  }

  // The sequence's length, this CTA's blocks and the first one's copy: before the wait with
  // early_loads (written by kernels two or more back), after it otherwise.
  // rest: the keys from the CTA's first block to the sequence's end; blocks: its block ids.
  int rest = 0, num_blocks = 0;
  const int32_t* blocks = p.block_table;
  auto start = [&]() {
    const int seq_len = p.seq_lens[seq], nb = (seq_len + 63) / 64;
    const int blk_begin = rank * nb / kFusedHeads;
    num_blocks = (rank + 1) * nb / kFusedHeads - blk_begin;
    rest = seq_len - 64 * blk_begin;
    blocks = p.block_table + static_cast<int64_t>(seq) * p.max_blocks + blk_begin;
    if (num_blocks > 0) fused_load_kv(p, s_kv, blocks[0], min(64, rest), bar_kv, tid);
  };
  if (p.early_loads) start();
  gpu::grid_dependency_wait();  // q (and without early_loads everything)
  gpu::launch_dependents();
  if (!p.early_loads) start();

  auto load_block = [&](int i) {  // the CTA's block i into stage i % kFusedStages
    fused_load_kv(p, s_kv + (i % kFusedStages) * FusedSmem::kStageBytes, blocks[i], min(64, rest - 64 * i),
                  bar_kv + 8 * (i % kFusedStages), tid);
  };
  if (num_blocks > 1) load_block(1);

  // ---- absorption of head h into row h of every CTA's query tile ----
  const __nv_bfloat16* q_row = p.q + (int64_t{seq} * heads + head) * (kFusedNope + kFusedRope);
  if (tid < kFusedNope) q_nope[(tid % 16) * 8 + tid / 16] = q_row[tid];  // row group rg's 8 rows together
  __syncthreads();
  float sum_x = 0.0f, sum_y = 0.0f;  // columns 2 tid, 2 tid + 1
#pragma unroll
  for (int rg = 0; rg < 16; ++rg) {  // mla_absorb_gemv_kernel's row group rg: rows rg, rg + 16, ..
    float acc_x = 0.0f, acc_y = 0.0f;
    const uint4 xs = reinterpret_cast<const uint4*>(q_nope)[rg];  // q_nope[rg + 16 r], r < 8
#pragma unroll
    for (int r = 0; r < kFusedNope / 16; ++r) {
      const int d = rg + 16 * r;
      const float2 w = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&wk[d]));
      const float x = __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(&xs)[r]);
      acc_x = fmaf(w.x, x, acc_x);
      acc_y = fmaf(w.y, x, acc_y);
    }
    sum_x += acc_x;
    sum_y += acc_y;
  }
  const __nv_bfloat162 q_abs = __floats2bfloat162_rn(sum_x, sum_y);
  const uint32_t q_abs_bits = *reinterpret_cast<const uint32_t*>(&q_abs);
  uint32_t q_pe_bits = tid < kFusedRope / 2 ? reinterpret_cast<const uint32_t*>(q_row + kFusedNope)[tid] : 0u;
  if (p.positions != nullptr && tid < kFusedRope / 2) {  // rope.cu's rotation of pair tid, rounded as it rounds
    const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&q_pe_bits));
    const __nv_bfloat162 r = gpu::rope_rotate(x.x, x.y, rope);
    q_pe_bits = *reinterpret_cast<const uint32_t*>(&r);
  }
  if constexpr (kSplit > 1) {  // rows kRows .. 15 of this CTA's query tile: zero (no head)
    for (int i = tid; i < (kFusedHeads - kRows) * kFusedRowBytes / 16; i += kFusedThreads) {
      *reinterpret_cast<uint4*>(smem + FusedSmem::kQ + kRows * kFusedRowBytes + 16 * i) = make_uint4(0, 0, 0, 0);
    }
  }
  // This CTA's piece of its head's row (q_abs columns, and q_pe when it holds latent part 0) into its
  // own query tile, then by 16-byte st.async at the same place in every other CTA's tile.
  uint8_t* q_piece = smem + FusedSmem::kQ + row * kFusedRowBytes;
  if (tid < kAbsorbThreads) reinterpret_cast<uint32_t*>(q_piece + 4 * kAbsorbThreads * half)[tid] = q_abs_bits;
  if (tid < kFusedRope / 2 && half == 0) reinterpret_cast<uint32_t*>(q_piece + 2 * kFusedLatent)[tid] = q_pe_bits;
  __syncthreads();  // the piece is complete
  ptx::cluster_wait();  // every CTA of the cluster has started: its receipt barriers are initialised
  {
    constexpr int kAbsChunks = 4 * kAbsorbThreads / 16;                   // q_abs part: 16-byte chunks
    const int chunks = kAbsChunks + (half == 0 ? 2 * kFusedRope / 16 : 0);  // and q_pe's 128 bytes
    const uint32_t s_piece = sm80::smem_u32(q_piece);
    for (int k = warp; k < kFusedHeads; k += kFusedWarps) {
      if (k == rank) continue;
      const uint32_t bar = ptx::map_rank(bar_q, k);
      for (int c = lane; c < chunks; c += 32) {
        const uint32_t at =
            c < kAbsChunks ? 4 * kAbsorbThreads * half + 16 * c : 2 * kFusedLatent + 16 * (c - kAbsChunks);
        ptx::st_async_u32x4(ptx::map_rank(s_piece + at, k), *reinterpret_cast<const uint4*>(q_piece + at), bar);
      }
    }
  }
  ptx::mbarrier_wait_cluster(bar_q, 0);  // every other CTA's piece: this CTA holds the 16 x 576 query tile

  // ---- attention over this CTA's blocks (the narrow kernel's loop) ----
  float o[8][4];                                  // O[16 x 64]: n8 tile j = channels 64 warp + 8 j ..
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // rows g, g + 8; l: this thread's keys
#pragma unroll
  for (int j = 0; j < 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;

  if (num_blocks > 0) {
    // Q [16 x 576] as A fragments: k16 step ks = ldmatrix.x4 of rows lane % 16, chunk 2 ks + lane / 16.
    uint32_t qf[kFusedQSteps][4];
#pragma unroll
    for (int ks = 0; ks < kFusedQSteps; ++ks) {
      sm80::ldmatrix_x4(qf[ks], s_q + (lane % 16) * kFusedRowBytes + (2 * ks + lane / 16) * 16);
    }
    for (int i = 0; i < num_blocks; ++i) {
      const int stage = i % kFusedStages;
      const uint32_t kv = s_kv + stage * FusedSmem::kStageBytes;
      ptx::mbarrier_wait(bar_kv + 8 * stage, (i / kFusedStages) & 1);

      // S[16 x 8] = Q K^T, keys 8 warp .. 8 warp + 7: ldmatrix.x4 of K rows (key 8 warp + lane % 8,
      // chunk 4 kp + lane / 8) gives the B fragments of k16 steps 2 kp and 2 kp + 1.
      float acc[kFusedScoreSets][4];
#pragma unroll
      for (int c = 0; c < kFusedScoreSets; ++c) acc[c][0] = acc[c][1] = acc[c][2] = acc[c][3] = 0.0f;
#pragma unroll
      for (int kp = 0; kp < kFusedQSteps / 2; ++kp) {
        uint32_t b[4];
        sm80::ldmatrix_x4(b, kv + (8 * warp + lane % 8) * kFusedRowBytes + (4 * kp + lane / 8) * 16);
        sm80::mma_16816(acc[(2 * kp) % kFusedScoreSets], qf[2 * kp], b[0], b[1]);
        sm80::mma_16816(acc[(2 * kp + 1) % kFusedScoreSets], qf[2 * kp + 1], b[2], b[3]);
      }
      // s[e]: row g + 8 (e / 2), key key0 + e % 2 of the CTA's keys; log2 units, masked past the
      // sequence's end (one query token: it sees every key of the sequence).
      const int key0 = 64 * i + 8 * warp + 2 * t;
      const bool masked = 64 * i + 64 > rest;
      float s[4], mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float v = acc[0][e];
#pragma unroll
        for (int c = 1; c < kFusedScoreSets; ++c) v += acc[c][e];
        v *= p.scale_log2;
        if (masked && key0 + e % 2 >= rest) v = -INFINITY;
        s[e] = v;
        mx[e / 2] = fmaxf(mx[e / 2], v);
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        mx[h] = fused_quad_max(mx[h]);
        if (t == 0) row_max[warp * 16 + g + 8 * h] = mx[h];
      }
      __syncthreads();  // row maxima of all 64 keys; every warp is past the previous block's P V

      // The next block goes into the stage the previous one used (blocks 0 and 1 started above).
      if (i >= 1 && i + 1 < num_blocks) load_block(i + 1);

      // Online softmax: every warp computes the same new maxima, hence the same alpha.
      float alpha[2], m_use[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float bm = -INFINITY;
#pragma unroll
        for (int w = 0; w < kFusedWarps; ++w) bm = fmaxf(bm, row_max[w * 16 + g + 8 * h]);
        const float m_new = fmaxf(m[h], bm);
        m_use[h] = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing visible yet stays at 0
        alpha[h] = exp2f(m[h] - m_use[h]);
        m[h] = m_new;
      }
#pragma unroll
      for (int e = 0; e < 4; ++e) s[e] = exp2f(s[e] - m_use[e / 2]);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        l[h] = l[h] * alpha[h] + s[2 * h] + s[2 * h + 1];
        *reinterpret_cast<__nv_bfloat162*>(p_tile + (g + 8 * h) * kFusedPRowBytes + 16 * warp + 4 * t) =
            __floats2bfloat162_rn(s[2 * h], s[2 * h + 1]);
      }
      if (__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f)) {
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          o[j][0] *= alpha[0];
          o[j][1] *= alpha[0];
          o[j][2] *= alpha[1];
          o[j][3] *= alpha[1];
        }
      }
      __syncthreads();  // P complete

      // O[16 x 64] += P[16 x 64] V[64 x 64], channels 64 warp ..: per k16 step (16 keys) the A
      // fragment of P, and ldmatrix.x4.trans of V rows (keys) 16 ks + lane % 8 + 8 ((lane / 8) & 1),
      // chunk 8 warp + 2 np + lane / 16: the B fragments of n8 tiles 2 np, 2 np + 1.
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) {
        uint32_t a[4];
        sm80::ldmatrix_x4(a, s_p + (lane % 16) * kFusedPRowBytes + (2 * ks + lane / 16) * 16);
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          uint32_t b[4];
          sm80::ldmatrix_x4_trans(b, kv + (16 * ks + lane % 8 + ((lane / 8) & 1) * 8) * kFusedRowBytes +
                                         (8 * warp + 2 * np + lane / 16) * 16);
          sm80::mma_16816(o[2 * np], a, b[0], b[1]);
          sm80::mma_16816(o[2 * np + 1], a, b[2], b[3]);
        }
      }
    }
  }

  // ---- this CTA's state sent to the CTAs that merge its rows ----
  // Row x's state (O unnormalised, m, l) is staged over the KV stages, then one warp stores it by
  // 16-byte st.async into slot `rank` of the receive buffer of each of the kSplit CTAs merging
  // head row x (with halves the pair 2x, 2x + 1; rows 8-15 hold no head); each receiver waits on
  // its own barrier for its 16 peers' states. W_UV's rows of this CTA then follow into shared
  // memory by bulk copy.
#pragma unroll
  for (int h = 0; h < 2; ++h) {  // the row sums: this thread's keys, the quad's (the 8 warps' below)
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
    if (t == 0) warp_sum_s[warp * 16 + g + 8 * h] = l[h];
    if (warp == 0 && t == 0) m_s[g + 8 * h] = m[h];
  }
  __syncthreads();  // every warp is past its last P V: the stages and P are free
  uint8_t* send = smem + FusedSmem::kSend;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (g + 8 * h >= kRows) continue;
    float* o_row = reinterpret_cast<float*>(send + (g + 8 * h) * FusedSmem::kState);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      *reinterpret_cast<float2*>(o_row + 64 * warp + 8 * j + 2 * t) = make_float2(o[j][2 * h], o[j][2 * h + 1]);
    }
  }
  if (tid < kRows) {
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kFusedWarps; ++w) sum += warp_sum_s[w * 16 + tid];
    *reinterpret_cast<float4*>(send + tid * FusedSmem::kState + kFusedLatent * 4) =
        make_float4(m_s[tid], sum, 0.0f, 0.0f);
  }
  __syncthreads();  // the staged states are complete
  const uint32_t slot = sm80::smem_u32(smem + FusedSmem::kRecv) + blockIdx.x * FusedSmem::kState;  // ours
  for (int i = warp; i < kRows * kSplit; i += kFusedWarps) {  // row i / kSplit to CTA i
    const uint4* src = reinterpret_cast<const uint4*>(send + (i / kSplit) * FusedSmem::kState);
    const uint32_t dst = ptx::map_rank(slot, i);
    const uint32_t bar = ptx::map_rank(bar_recv, i);
    for (int c = lane; c < FusedSmem::kState / 16; c += 32) ptx::st_async_u32x4(dst + 16 * c, src[c], bar);
  }
  if (tid == 0) {
    ptx::fence_async_proxy();  // the stages' and query tile's last uses come before the copy's writes
    ptx::mbarrier_arrive_expect_bytes(bar_wuv, kUpRows * kFusedLatent * 2);
    const __nv_bfloat16* rows = w_uv() + kUpRows * half * kFusedLatent;
#pragma unroll
    for (int c = 0; c < kUpRows / 16; ++c) {  // 16 KB copies
      ptx::bulk_load(sm80::smem_u32(smem + FusedSmem::kWuv) + 16384 * c, rows + 16 * kFusedLatent * c, 16384,
                     bar_wuv);
    }
  }

  // ---- merge of the head's row over the 16 CTAs: o_lat[h], channels 2 tid, 2 tid + 1 ----
  ptx::mbarrier_wait_cluster(bar_recv, 0);  // the 16 peers' row states have landed
  {
    const uint8_t* recv = smem + FusedSmem::kRecv;  // [16 peers][kState]
    float big_m = -INFINITY;
#pragma unroll
    for (int k = 0; k < kFusedHeads; ++k) {
      big_m = fmaxf(big_m, reinterpret_cast<const float*>(recv + k * FusedSmem::kState + kFusedLatent * 4)[0]);
    }
    const float base = big_m == -INFINITY ? 0.0f : big_m;  // the row sees key 0: big_m is finite
    float total = 0.0f, acc_x = 0.0f, acc_y = 0.0f;
#pragma unroll
    for (int k = 0; k < kFusedHeads; ++k) {
      const float2 ml = reinterpret_cast<const float2*>(recv + k * FusedSmem::kState + kFusedLatent * 4)[0];
      const float2 ok = reinterpret_cast<const float2*>(recv + k * FusedSmem::kState)[tid];
      const float w = exp2f(ml.x - base);  // a peer that read no block: 0
      total += w * ml.y;
      acc_x += w * ok.x;
      acc_y += w * ok.y;
    }
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;
    // o_lat over P: every warp is past its last P V (the barrier above).
    reinterpret_cast<__nv_bfloat162*>(smem + FusedSmem::kOLat)[tid] =
        __floats2bfloat162_rn(acc_x * inv, acc_y * inv);
  }
  __syncthreads();  // o_lat [512] bf16 complete

  // ---- up-projection of head h: rows (outputs) kUpRows half + W warp .. + W - 1 of W_UV[h], W =
  // kUpRows / 8 (16, or 8 with halves) ----
  {
    constexpr int kWarpRows = kUpRows / kFusedWarps;
    const uint4* lat_v = reinterpret_cast<const uint4*>(smem + FusedSmem::kOLat);
    const uint4 x[2] = {lat_v[lane], lat_v[32 + lane]};  // columns 8 lane .., 256 + 8 lane ..
    const int first = kUpRows * half + kWarpRows * warp;
    const uint4* w_uv_s =  // the warp's first row of the CTA's W_UV rows
        reinterpret_cast<const uint4*>(smem + FusedSmem::kWuv) + kWarpRows * warp * (kFusedLatent / 8);
    __nv_bfloat16* out = p.o + (int64_t{seq} * heads + head) * kFusedValue + first;
    ptx::mbarrier_wait(bar_wuv, 0);  // this CTA's W_UV rows in shared memory
#pragma unroll
    for (int r0 = 0; r0 < kWarpRows; r0 += kFusedUpRowsInFlight) {
      uint4 wv[kFusedUpRowsInFlight][2];
#pragma unroll
      for (int r = 0; r < kFusedUpRowsInFlight; ++r) {
        const uint4* w_row = w_uv_s + (r0 + r) * (kFusedLatent / 8);
        wv[r][0] = w_row[lane];
        wv[r][1] = w_row[32 + lane];
      }
#pragma unroll
      for (int r = 0; r < kFusedUpRowsInFlight; ++r) {
        float acc = 0.0f;
#pragma unroll
        for (int s = 0; s < 2; ++s) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const float2 xf = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(&x[s])[e]);
            const float2 wf = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(&wv[r][s])[e]);
            acc = fmaf(wf.y, xf.y, fmaf(wf.x, xf.x, acc));
          }
        }
        const float sum = gpu::warp_sum(acc);
        if (lane == 0) out[r0 + r] = __float2bfloat16_rn(sum);
      }
    }
  }
}

}  // namespace mlaserve::ops::sm90
