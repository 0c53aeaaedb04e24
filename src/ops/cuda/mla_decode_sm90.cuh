// MLA decode attention on Hopper (sm_90a): device code. Contract: ops/mla_decode.h.
//
// Symbols: B sequences, T = sum q_len query rows, n heads, P KV partitions; a row of the cache
// and of q is 576 bf16 = [latent 512 | rope 64]; V is the first 512 channels of the same row.
//
// Why this shape. Decode reads every cached row of every sequence once, 1152 bytes per token,
// and does 2 * 1088 flops per (query row, key): with 16 heads per GPU (V3 under TP8, V2-Lite) it
// is bound by HBM, with 128 heads (V3 on one GPU) it sits near the H100's ridge. So:
//   - all q_len * n query rows of a sequence share each cache row read: they form the M side of
//     the two GEMMs S = Q K^T and O += P V (MQA with one 576-wide KV head). M is cut into tiles
//     of kTileRows = 64, one per CTA (blockIdx.x); problems with fewer rows (16 heads: 16)
//     copy only min(q_len * n, 64) rows and leave the rest of the tile zero (computed, dropped).
//   - the context is split over P partitions (blockIdx.y) so that one wave fills all SMs even
//     for one sequence; the schedule kernel gives every partition an equal share of the step's
//     blocks (plus kPieceOverheadBlocks per piece), runs once per step and serves every layer.
//     Pieces of split sequences write normalised partial outputs + lse to a workspace, merged
//     by log-sum-exp (mla_decode_sm90_merge.cuh): inside the split-S kernel, by the CTAs that
//     wrote the pieces once all have arrived on a counter (small batches: no second kernel), the
//     same way inside the seesaw kernel from 16 sequences, or by the combine kernel after the
//     ring kernel and the seesaw's smaller batches. The kernels are launched with
//     programmatic dependent launch: each one's launch overlaps the end of the kernel before it
//     (batch 1: ~2 us of a ~14 us call), and each waits for that kernel (griddepcontrol.wait) first.
//   - tensor cores through wgmma (sm_90a), operands straight from shared memory in the
//     canonical 128-byte-swizzle layout, so that the cache tile is read from HBM once, lands in
//     shared memory once, and feeds both GEMMs (K-major as K for S, MN-major as V for O).
//
// One CTA = 2 warpgroups (256 threads; the seesaw adds a producer), ~226 KB of shared memory,
// one CTA per SM:
//   Q tile [64 x 576] (72 KB) | KV stages 2 x [64 x 576] (144 KB) | P [64 x 64] bf16 (8 KB)
//   | per-row f32 exchange [4 x 64] | 5 mbarriers | 2 merge jobs (split S).
// A tile is 9 column blocks of [64 rows][128 B]; 16-byte chunk c of row r sits at c ^ (r % 8).
//
// Loads are TMA bulk tensor copies (cp.async.bulk.tensor, 128-byte swizzle) issued by one
// thread, boxes of [64 rows x 64 channels] (the seesaw: three copies a tile), completing on
// mbarriers (and one for Q): the other threads spend no instructions on loads. Where one query tile reads each
// KV block (at most 64 query rows a sequence) its copies tag the lines L2 evict-first
// (use_kv_evict_first): read once, they do not push out what is read again.
//
// Three decode kernels share this file's pieces and mla_decode_sm90_common.cuh (the walk over a
// partition, the copies, the softmax steps, the epilogue's stores); the rules that pick one per
// step are in mla_decode_sm90_heuristics.h, use_partitioned_kernels and use_ring_kernel:
//   - mla_decode_sm90_seesaw.cuh: more than 16 query rows a sequence (32-128 heads, or 16 heads x
//     2+ tokens) from 8 sequences: the warpgroups take a piece's blocks in pairs, each computing S
//     and the softmax of one while the other's P V runs; P_A in the P region, P_B over B's rope
//     box; a third warpgroup (the producer, its registers given to the other two) copies each
//     third of a KV stage again as soon as its readers are done with it (its own shared-memory
//     map, SeesawSmem; 384 threads). It replaced the pipeline kernel (warpgroup 0 computing S and
//     the softmax of every block for both) in the fifty-third session.
//   - mla_decode_sm90_ring.cuh: in its place for at most 16 query rows a sequence (16 heads, one
//     token): operands sized for 16 rows, O kept transposed, and the KV stages a ring of 25
//     column blocks (2.78 blocks in flight instead of 2); its own shared-memory map (RingSmem).
//   - mla_decode_sm90_split_s.cuh: both warpgroups in step, each computing S over half of a
//     block's keys. A shorter chain per block: faster when a CTA reads about one block (batch 1).
// The schedule kernel is below; the merge of split sequences in mla_decode_sm90_merge.cuh.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>

#include <cstdint>
#include <utility>

#include <cute/arch/mma_sm90_gmma.hpp>

#include "ops/cuda/mla_decode_sm90_heuristics.h"
#include "ops/cuda/mla_decode_sm90_params.h"
#include "ops/cuda/sm90_ptx.cuh"
#include "ops/mla_decode.h"

namespace mlaserve::ops::sm90 {

inline constexpr int kThreads = 256;                       // two warpgroups
inline constexpr int kColBlockBytes = 64 * 128;            // [64 rows][64 bf16]: 8 KB
inline constexpr int kTileBytes = 9 * kColBlockBytes;      // [64 rows][576 bf16]: 72 KB
inline constexpr int kScheduleThreads = 256;
inline constexpr int kMaxScheduleSeqs = 32768;            // the schedule's prefix sums fit shared memory
inline constexpr int kCombineThreads = 256;                // 8 warps per work item (query row)
inline constexpr int kCombineCtasPerSm = 4;

// Shared-memory map of the decode kernel (byte offsets from a 1 KB-aligned base).
struct Smem {
  static constexpr int kQ = 0;                             // Q tile
  static constexpr int kKv = kQ + kTileBytes;              // 2 KV stages
  static constexpr int kP = kKv + 2 * kTileBytes;          // P [64 rows][64 keys] bf16
  static constexpr int kRowMax = kP + kColBlockBytes;      // [2][64] f32: split S, row max per warpgroup
  static constexpr int kRowSum = kRowMax + 2 * 64 * 4;     // [2][64] f32: split S, row sum per warpgroup
  static constexpr int kRowScale = kRowMax;                // [64] f32: a block's O rescale per row
  static constexpr int kRowInv = kRowMax + 64 * 4;         // [64] f32: 1 / row sum at a piece's end
  static constexpr int kNextReady = kRowSum;               // i32: warpgroup 0's next block has landed
  static constexpr int kBarriers = kRowSum + 2 * 64 * 4;   // mbarriers: KV full 0, 1, Q, KV empty 0, 1
  static constexpr int kMergeJobs = kBarriers + 5 * 8;     // split S: [2] MergeJob (merge.cuh), 8 ints each
  static constexpr int kBytes = kMergeJobs + 2 * 8 * 4;
};
inline constexpr int kSmemBytes = Smem::kBytes + 1024;     // + room to align the base
static_assert(kTileRows == 64, "the tiling assumes one wgmma M tile of 64 query rows");
static_assert(kSmemBytes <= 227 * 1024, "over the sm_90 shared-memory limit per CTA");

// ---- PTX (ops/cuda/sm90_ptx.cuh) --------------------------------------------------------
// The mbarriers here have one arrival per phase: the thread that starts a copy arrives and
// announces its bytes; waiters spin on the phase parity.

// Starts the copy of the box_rows x 576 tile at `row` (a row-major [rows, 576] bf16 tensor whose
// map reads boxes of box_rows x 64 channels, rows past the end as 0) into the swizzled layout of
// a [kRows x 576] tile at dst (9 column blocks of [kRows][128 B]): 9 boxes.
template <int kRows = kTileRows>
__device__ __forceinline__ void tma_load_tile(uint32_t dst, const CUtensorMap* map, int row, int box_rows,
                                              uint32_t bar) {
  ptx::mbarrier_arrive_expect_bytes(bar, 9 * 128 * box_rows);
#pragma unroll
  for (int cb = 0; cb < 9; ++cb) ptx::tma_load_2d(dst + cb * kRows * 128, map, cb * 64, row, bar);
}

// Column block cb (64 channels) of the KV block at `row` (64 rows) into dst, its lines tagged L2
// evict-first when evict_first (MlaDecodeParams::kv_evict_first; policy: ptx::l2_evict_first_policy()).
__device__ __forceinline__ void tma_load_kv_box(uint32_t dst, const CUtensorMap* map, int cb, int row, uint32_t bar,
                                                bool evict_first, uint64_t policy) {
  if (evict_first) {
    ptx::tma_load_2d_hint(dst, map, cb * 64, row, bar, policy);
  } else {
    ptx::tma_load_2d(dst, map, cb * 64, row, bar);
  }
}

// The whole KV block at `row` as tma_load_tile lays it out, its boxes as tma_load_kv_box copies them.
__device__ __forceinline__ void tma_load_kv_tile(uint32_t dst, const CUtensorMap* map, int row, uint32_t bar,
                                                 bool evict_first) {
  if (!evict_first) {
    tma_load_tile(dst, map, row, kTileRows, bar);
    return;
  }
  const uint64_t policy = ptx::l2_evict_first_policy();
  ptx::mbarrier_arrive_expect_bytes(bar, kTileBytes);
#pragma unroll
  for (int cb = 0; cb < 9; ++cb) tma_load_kv_box(dst + cb * kColBlockBytes, map, cb, row, bar, true, policy);
}

// wgmma descriptors, 128-byte swizzle. K-major operands (Q, K, P): leading byte offset unused
// (16), stride byte offset 1024 = between 8-row groups. MN-major V: leading byte offset 8 KB =
// between 64-channel column blocks, stride byte offset 1024 = between 8-key groups.

namespace gmma = cute::SM90::GMMA;

template <size_t... I>
__device__ __forceinline__ void wgmma_64x256(uint64_t a, uint64_t b, float (&d)[128], std::index_sequence<I...>) {
  gmma::MMA_64x256x16_F32BF16BF16_SS<gmma::Major::K, gmma::Major::MN>::fma(a, b, d[I]...,
                                                                            gmma::ScaleOut::One);
}

// Programmatic dependent launch (both kernels are launched with it): wait until the grids this
// one depends on have finished and their writes are visible, and let the next grid in the stream
// start launching (its CTAs then wait in grid_dependency_wait, off the critical path).
__device__ __forceinline__ void grid_dependency_wait() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }
__device__ __forceinline__ void grid_dependents_launch() {
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
}

// ---- the schedule kernel -------------------------------------------------------------------

// Exclusive prefix sum of one value per thread over the CTA; `total` gets the CTA's sum.
__device__ __forceinline__ int cta_exclusive_scan(int v, int* warp_totals, int& total) {
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  int x = v;
#pragma unroll
  for (int d = 1; d < 32; d *= 2) {
    const int y = __shfl_up_sync(0xffffffffu, x, d);
    if (lane >= d) x += y;
  }
  if (lane == 31) warp_totals[warp] = x;
  __syncthreads();
  int before = 0;
  total = 0;
#pragma unroll
  for (int w = 0; w < kScheduleThreads / 32; ++w) {
    before += w < warp ? warp_totals[w] : 0;
    total += warp_totals[w];
  }
  __syncthreads();  // warp_totals free for the next scan
  return before + x - v;
}

// The scheduling rule. Sequence b costs blocks(b) + ov units (ov = piece_overhead, placed before
// its blocks); the batch's C units are laid end to end. Two ways to deal them to the P partitions
// (MlaPlan in ops/mla_decode.h):
//   - split: partition q takes units [q * w, (q + 1) * w) with w = ceil(C / P). A boundary that
//     falls strictly inside a sequence's blocks splits it, so sequence b has 1 + (boundaries
//     inside it) pieces, and pieces of split sequences get consecutive workspace slots (at most
//     2P in all: every split sequence holds at least one boundary, and has one more piece than
//     boundaries), and the split sequences are listed for the combine kernel (fewer than P: each
//     holds a boundary).
//   - whole: boundary q sits at the sequence start nearest to unit q * C / P, so every partition
//     reads whole sequences (possibly none) and nothing is merged.
// kAuto takes the whole plan when its largest partition costs no more than w + the split penalty
// (heuristics.h: what the partials and the merge cost, by w). The prefix sums of the costs live in
// shared memory ((B + 1) ints, dynamic), where the partitions' binary searches read them. It also
// zeroes the split-S kernel's merge counters (mla_decode_sm90_merge.cuh), which every layer's
// call then leaves at zero.
__global__ void __launch_bounds__(kScheduleThreads) mla_decode_sm90_schedule_kernel(const MlaScheduleParams p) {
  extern __shared__ int cost_prefix[];  // [B + 1]
  __shared__ int warp_totals[kScheduleThreads / 32];
  __shared__ int whole_cost;  // the whole plan's largest partition
  const int tid = static_cast<int>(threadIdx.x), num_seqs = p.num_seqs, ov = p.piece_overhead;
  auto blocks_of = [&](int b) { return (p.seq_lens[b] + 63) / 64; };

  int total = 0;
  for (int base = 0; base < num_seqs; base += kScheduleThreads) {
    const int b = base + tid;
    const int blocks = b < num_seqs ? blocks_of(b) : 0;
    int chunk = 0;
    const int before = cta_exclusive_scan(b < num_seqs ? blocks + ov : 0, warp_totals, chunk);
    if (b < num_seqs) cost_prefix[b] = total + before;
    total += chunk;
  }
  if (tid == 0) {
    cost_prefix[num_seqs] = total;
    whole_cost = 0;
  }
  __syncthreads();
  const int width = max(1, (total + p.num_parts - 1) / p.num_parts);

  // Unit x -> (sequence, block): the last sequence starting at or before x.
  auto locate = [&](int x, int& seq, int& block) {
    int lo = 0, hi = num_seqs;
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (cost_prefix[mid] <= x) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    seq = lo;
    block = lo < num_seqs ? max(0, x - cost_prefix[lo] - ov) : 0;
  };
  // The whole plan's boundary q (0 .. P): the sequence whose start is nearest to q * C / P
  // (B at q = P); non-decreasing in q.
  auto whole_boundary = [&](int q) {
    const int x = static_cast<int>(static_cast<int64_t>(q) * total / p.num_parts);
    int seq = 0, block = 0;
    locate(x, seq, block);
    if (seq < num_seqs && cost_prefix[seq + 1] - x < x - cost_prefix[seq]) ++seq;
    return seq;
  };
  bool whole = p.plan == static_cast<int32_t>(MlaPlan::kWhole);
  if (p.plan == static_cast<int32_t>(MlaPlan::kAuto)) {
    int worst = 0;
    for (int q = tid; q < p.num_parts; q += kScheduleThreads) {
      worst = max(worst, cost_prefix[whole_boundary(q + 1)] - cost_prefix[whole_boundary(q)]);
    }
    atomicMax(&whole_cost, worst);
    __syncthreads();
    const int penalty = p.penalty_base + p.penalty_rows * min(width, p.penalty_full_width) / p.penalty_full_width;
    whole = whole_cost <= width + penalty;
  }

  int slots = 0, num_split = 0;
  for (int base = 0; base < num_seqs; base += kScheduleThreads) {
    const int b = base + tid;
    int pieces = 0;
    if (b < num_seqs) {
      const int first = cost_prefix[b] + ov;  // unit of block 0
      pieces = whole ? 1 : 1 + (cost_prefix[b + 1] - 1) / width - first / width;
    }
    int slot_chunk = 0, split_chunk = 0;
    const int slots_before = cta_exclusive_scan(pieces > 1 ? pieces : 0, warp_totals, slot_chunk);
    const int splits_before = cta_exclusive_scan(pieces > 1 ? 1 : 0, warp_totals, split_chunk);
    if (b < num_seqs) p.seq_splits[b] = MlaSeqSplit{pieces, slots + slots_before};
    if (pieces > 1) p.split_seqs[num_split + splits_before] = b;
    slots += slot_chunk;
    num_split += split_chunk;
  }
  for (int i = num_split + tid; i < p.num_parts; i += kScheduleThreads) p.split_seqs[i] = -1;
  for (int i = tid; i < p.num_merge_counters; i += kScheduleThreads) p.merge_counters[i] = 0;

  for (int q = tid; q < p.num_parts; q += kScheduleThreads) {
    MlaPartition part{};
    if (whole) {  // sequences [begin_seq, end_seq), each from block 0 to its end
      part.begin_seq = whole_boundary(q);
      part.end_seq = whole_boundary(q + 1);
    } else {
      locate(min(q * width, total), part.begin_seq, part.begin_block);
      locate(min((q + 1) * width, total), part.end_seq, part.end_block);
      // A partition that starts inside a sequence's blocks computes piece (boundaries before it).
      part.begin_piece = part.begin_block > 0 ? q - (cost_prefix[part.begin_seq] + ov) / width : 0;
    }
    p.parts[q] = part;
  }
}

}  // namespace mlaserve::ops::sm90
