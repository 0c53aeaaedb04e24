// MLA decode on Hopper (sm_90a): merging the pieces of split sequences. The design note:
// mla_decode_sm90.cuh.
//
// A sequence read by several KV partitions ("split") has one piece per partition; each piece
// writes its normalised partial output partial_k [rows, 512] and lse_k [rows] (natural log) to
// the workspace slot first_slot + k, and the merge is
//   lse = log sum_k exp(lse_k),   out = sum_k exp(lse_k - lse) * partial_k.
// Two places run it, on the same work item (merge_item: one query row, whole or a quarter):
//   - the split-S kernel (small batches) merges inside the decode kernel: each CTA that wrote a
//     piece arrives on a counter of (split sequence, query tile), and once all the sequence's
//     pieces have arrived, the CTAs that wrote them share the tile's merge items (piece k takes
//     items k, k + n, ...). That saves the combine kernel's launch and the drain between the
//     two kernels (batch 1: an estimated 2-4 us of 14.5, not measured). It needs every CTA of
//     the grid resident at once, which the schedule gives (one wave: num_m_tiles * P <= SMs,
//     one CTA per SM; checked at launch), and every CTA makes all its arrivals before it waits
//     for any, so no CTA waits on one that cannot run;
//   - the seesaw kernel does the same from 16 sequences when its grid is one wave
//     (MlaDecodeParams::merge_in_kernel, use_seesaw_merge: num_m_tiles * P <= SMs, one CTA an SM),
//     its two consumer warpgroups merging after their last piece (seesaw_merge_jobs);
//   - the ring kernel, and the seesaw's larger grids, leave it to mla_decode_sm90_combine_kernel.
// A merge item reads everything it needs in one round trip: each warp keeps an online max of
// its pieces' lse while their partials are in flight, and the 8 warps' (max, sum, acc) meet
// in shared memory, so no lse pass precedes the partials' loads.
//
// Counters: [2P, num_m_tiles] i32, slot first_slot's row for its sequence. The schedule kernel
// zeroes them once per step; within a step each use leaves its counter at 0 again: a CTA adds 1
// when its piece is stored (release), waits for n (acquire), adds 1 again once past the wait,
// and the CTA whose second add brings the count to 2n stores 0 (every CTA has passed the wait
// by then). Nothing in the result depends on arrival order: the same inputs give the same bits.
#pragma once

#include "ops/cuda/mla_decode_sm90.cuh"
#include "ops/cuda/mla_decode_sm90_common.cuh"

namespace mlaserve::ops::sm90 {

static_assert(kCombineThreads == 256 && kThreads == 256, "a merge item is run by 8 warps");
inline constexpr int kMergeWarps = 8;

// The merging threads' barrier: barrier 0 (__syncthreads') for 256 threads, the whole CTA in the
// combine and split-S kernels, the two consumer warpgroups in the seesaw kernel (whose producer
// warps have left by then).
__device__ __forceinline__ void merge_sync() { named_barrier_sync(0, kMergeWarps * 32); }

inline constexpr uint32_t kMaxMergePolls = 1u << 25;  // ~0.5 us each: ~15 s before a wait gives up

// Shared-memory scratch of one merge item: per warp its running max and sum of exp(lse_k - max)
// and its weighted sum of partials (32 * kVecs float4 a warp).
struct MergeScratch {
  float* warp_max;   // [8]
  float* warp_sum;   // [8]
  float4* warp_acc;  // [8][32 * kVecs]
};

// Merges 512 / kParts channels (part `part`) of query row `row` of a split sequence whose n
// pieces sit in slots first_slot .. first_slot + n - 1, into out[out_row] (bf16) and, for part
// 0, lse[out_row]. 256 threads call it (it holds two merge_sync). Warp g takes
// pieces g, g + 8, ..., kUnroll of them per round trip; lane i channels 4 (i + 32 c) of the part.
// Partials are read with ld.global.cg: other SMs wrote them, this SM's L1 may hold stale lines.
template <int kParts, int kUnroll>
__device__ __forceinline__ void merge_item(const MlaDecodeParams& p, int first_slot, int n, int row, int part,
                                           int64_t out_row, const MergeScratch& scratch) {
  static_assert(kParts == 1 || kParts == 4, "an item is a whole row or a quarter of one");
  constexpr int kVecs = 4 / kParts;  // float4 per lane per piece
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int64_t slot_row = static_cast<int64_t>(first_slot) * p.partial_rows + row;
  const float* lse_src = p.partial_lse + slot_row;  // piece k at + k * partial_rows
  const float4* src = reinterpret_cast<const float4*>(p.partial_out + slot_row * 512) + part * 32 * kVecs + lane;
  const int64_t piece_stride = static_cast<int64_t>(p.partial_rows) * 512 / 4;  // in float4

  float m = -INFINITY, sum = 0.0f;  // this warp's max of lse_k, sum of exp(lse_k - m)
  float4 acc[kVecs];                // sum of exp(lse_k - m) * partial_k
#pragma unroll
  for (int c = 0; c < kVecs; ++c) acc[c] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int k0 = warp; k0 < n; k0 += kMergeWarps * kUnroll) {
    float lk[kUnroll];
    float4 v[kUnroll][kVecs];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {  // every load of the round before any use
      const int k = k0 + kMergeWarps * u;
      lk[u] = k < n ? __ldcg(lse_src + static_cast<int64_t>(k) * p.partial_rows) : -INFINITY;
#pragma unroll
      for (int c = 0; c < kVecs; ++c) {
        v[u][c] = k < n ? __ldcg(src + k * piece_stride + c * 32) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (lk[u] == -INFINITY) continue;  // no piece, or one that saw no key of this row (its partial is 0)
      const float m_new = fmaxf(m, lk[u]);
      const float alpha = expf(m - m_new), w = expf(lk[u] - m_new);  // m = -inf: alpha = 0
      sum = sum * alpha + w;
#pragma unroll
      for (int c = 0; c < kVecs; ++c) {
        acc[c].x = acc[c].x * alpha + w * v[u][c].x;
        acc[c].y = acc[c].y * alpha + w * v[u][c].y;
        acc[c].z = acc[c].z * alpha + w * v[u][c].z;
        acc[c].w = acc[c].w * alpha + w * v[u][c].w;
      }
      m = m_new;
    }
  }
  if (lane == 0) {
    scratch.warp_max[warp] = m;
    scratch.warp_sum[warp] = sum;
  }
#pragma unroll
  for (int c = 0; c < kVecs; ++c) scratch.warp_acc[warp * 32 * kVecs + c * 32 + lane] = acc[c];
  merge_sync();
  if (tid < 32 * kVecs) {  // thread t: the item's channels 4t .. 4t + 3
    float mx = -INFINITY;
#pragma unroll
    for (int g = 0; g < kMergeWarps; ++g) mx = fmaxf(mx, scratch.warp_max[g]);
    const float base = mx == -INFINITY ? 0.0f : mx;  // a real row's first piece sees key 0: mx is finite
    float total = 0.0f;
    float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
    for (int g = 0; g < kMergeWarps; ++g) {
      const float w = expf(scratch.warp_max[g] - base);  // a warp without pieces: 0 (its sums are 0)
      const float4 a = scratch.warp_acc[g * 32 * kVecs + tid];
      total += w * scratch.warp_sum[g];
      o.x += w * a.x;
      o.y += w * a.y;
      o.z += w * a.z;
      o.w += w * a.w;
    }
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;
    const __nv_bfloat162 lo = __floats2bfloat162_rn(o.x * inv, o.y * inv);
    const __nv_bfloat162 hi = __floats2bfloat162_rn(o.z * inv, o.w * inv);
    uint2 packed;
    packed.x = *reinterpret_cast<const uint32_t*>(&lo);
    packed.y = *reinterpret_cast<const uint32_t*>(&hi);
    *reinterpret_cast<uint2*>(p.out + out_row * 512 + part * 128 * kVecs + tid * 4) = packed;
    if (tid == 0 && part == 0) p.lse[out_row] = total > 0.0f ? base + logf(total) : -INFINITY;
  }
  merge_sync();  // the scratch is reused by the next item
}

// One warp merges a whole query row from all n pieces (lane i: channels 4 (i + 32 c), c < 4), the
// same online merge as merge_item without the meeting of warps in shared memory: for a CTA with
// several rows to merge (few pieces), so that its 8 warps take 8 rows at once instead of one row
// after another (batch 1, 16 heads, 2 pieces: 8 rows a CTA, which took ~1 us each in turn).
template <int kUnroll>
__device__ __forceinline__ void merge_row_warp(const MlaDecodeParams& p, int first_slot, int n, int row,
                                               int64_t out_row) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t slot_row = static_cast<int64_t>(first_slot) * p.partial_rows + row;
  const float* lse_src = p.partial_lse + slot_row;  // piece k at + k * partial_rows
  const float4* src = reinterpret_cast<const float4*>(p.partial_out + slot_row * 512) + lane;
  const int64_t piece_stride = static_cast<int64_t>(p.partial_rows) * 512 / 4;  // in float4

  float m = -INFINITY, sum = 0.0f;
  float4 acc[4];
#pragma unroll
  for (int c = 0; c < 4; ++c) acc[c] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  for (int k0 = 0; k0 < n; k0 += kUnroll) {
    float lk[kUnroll];
    float4 v[kUnroll][4];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {  // every load of the round before any use
      const int k = k0 + u;
      lk[u] = k < n ? __ldcg(lse_src + static_cast<int64_t>(k) * p.partial_rows) : -INFINITY;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        v[u][c] = k < n ? __ldcg(src + k * piece_stride + c * 32) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (lk[u] == -INFINITY) continue;  // no piece, or one that saw no key of this row
      const float m_new = fmaxf(m, lk[u]);
      const float alpha = expf(m - m_new), w = expf(lk[u] - m_new);
      sum = sum * alpha + w;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        acc[c].x = acc[c].x * alpha + w * v[u][c].x;
        acc[c].y = acc[c].y * alpha + w * v[u][c].y;
        acc[c].z = acc[c].z * alpha + w * v[u][c].z;
        acc[c].w = acc[c].w * alpha + w * v[u][c].w;
      }
      m = m_new;
    }
  }
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
#pragma unroll
  for (int c = 0; c < 4; ++c) {
    const __nv_bfloat162 lo = __floats2bfloat162_rn(acc[c].x * inv, acc[c].y * inv);
    const __nv_bfloat162 hi = __floats2bfloat162_rn(acc[c].z * inv, acc[c].w * inv);
    uint2 packed;
    packed.x = *reinterpret_cast<const uint32_t*>(&lo);
    packed.y = *reinterpret_cast<const uint32_t*>(&hi);
    *reinterpret_cast<uint2*>(p.out + out_row * 512 + 4 * (lane + 32 * c)) = packed;
  }
  if (lane == 0) p.lse[out_row] = sum > 0.0f ? m + logf(sum) : -INFINITY;
}

// ---- the combine kernel (after the ring and seesaw kernels) -----------------------------------

// Persistent CTAs walk (split sequence, query row, part) items: kParts = 1 whole rows, for
// batches with many split rows; 4: quarters, so that a few rows split many ways spread over 4x
// the SMs. Sequences read by one partition were written by the decode kernel. Quarters: 4 CTAs
// an SM (<= 64 registers), 4 pieces a warp per round trip (32 in all: batch 8 at 4096 tokens
// has ~16 a sequence); whole rows: 3 CTAs an SM, 2 pieces a warp (large batches: 2-3 in all).
template <int kParts>
__global__ void __launch_bounds__(kCombineThreads, kParts == 4 ? 4 : 3)
    mla_decode_sm90_combine_kernel(const __grid_constant__ MlaDecodeParams p) {
  constexpr int kVecs = 4 / kParts;
  __shared__ float warp_max[kMergeWarps], warp_sum[kMergeWarps];
  __shared__ float4 warp_acc[kMergeWarps * 32 * kVecs];
  const MergeScratch scratch{warp_max, warp_sum, warp_acc};
  grid_dependency_wait();  // the decode kernel's partials
  grid_dependents_launch();

  for (int item = static_cast<int>(blockIdx.x);; item += static_cast<int>(gridDim.x)) {
    const int split_index = item / (p.max_rows * kParts), row = item / kParts % p.max_rows;
    const int part = item % kParts;
    if (split_index >= p.num_parts) return;
    const int seq = p.split_seqs[split_index];
    if (seq < 0) return;  // past the last split sequence, and so is every later item
    const int q_begin = p.query_start[seq];
    if (row >= (p.query_start[seq + 1] - q_begin) * p.n_heads) continue;
    const MlaSeqSplit split = p.seq_splits[seq];
    merge_item<kParts, kParts == 4 ? 4 : 2>(p, split.first_slot, split.num_pieces, row, part,
                                            static_cast<int64_t>(q_begin) * p.n_heads + row, scratch);
  }
}

// ---- the in-kernel merge (split-S and seesaw kernels) ---------------------------------------

// A split piece that a CTA of the split-S or seesaw kernel stored; the CTA merges its share of the
// sequence's tile after its last block. Kept in shared memory (Smem::kMergeJobs,
// SeesawSmem::kMergeJobs), not registers.
struct MergeJob {
  int32_t first_slot;  // the sequence's first workspace slot: its counter row
  int32_t num_pieces;  // n
  int32_t piece;       // which piece this CTA stored: it takes merge items piece, piece + n, ...
  int32_t rows;        // q_len * n_heads query rows of the sequence
  int32_t row0;        // flat [T * n] index of its first query row
};

// Whole rows of a split tile, a row a warp (merge_row_warp) rather than a row by all 8 warps
// (merge_item<1, 8>) when that takes fewer dependent round trips: a CTA merges ceil(rows / n)
// rows; all 8 warps on a row take one trip per 64 pieces, a lone warp one per 8. One row each, or
// many pieces (128 heads at 2048 tokens: 2 rows of 32 pieces, 2 trips against 4), stay with the 8.
__device__ __forceinline__ bool merge_rows_by_warps(int n, int rows) {
  const int rows_per_cta = (rows + n - 1) / n;
  const int trips_together = rows_per_cta * ((n + 63) / 64);
  const int trips_alone = (rows_per_cta + kMergeWarps - 1) / kMergeWarps * ((n + 7) / 8);
  return trips_alone < trips_together;
}

__device__ __forceinline__ int32_t* merge_counter(const MlaDecodeParams& p, int first_slot) {
  return p.merge_counters + static_cast<int64_t>(first_slot) * gridDim.x + blockIdx.x;
}

// After every thread has stored its partial rows, fenced them (__threadfence) and passed a
// merge_sync: one thread announces the piece (release at gpu scope).
__device__ __forceinline__ void merge_arrive(int32_t* counter) {
  asm volatile("red.release.gpu.global.add.s32 [%0], 1;\n" ::"l"(counter) : "memory");
}

// A split piece this CTA has stored (split.num_pieces > 1), once it is stored: this thread's
// partial rows made visible GPU-wide, then, after every merging thread's, thread 0 announces the
// piece. Returns its merge job, which the caller keeps for after its last piece.
__device__ __forceinline__ MergeJob announce_split_piece(const MlaDecodeParams& p, const MlaSeqSplit& split,
                                                         const Piece& pc) {
  __threadfence();
  merge_sync();
  if (threadIdx.x == 0) merge_arrive(merge_counter(p, split.first_slot));
  return MergeJob{split.first_slot, split.num_pieces, pc.index, pc.rows, static_cast<int32_t>(pc.row0)};
}

// The merge scratch over the KV stages of Smem's map (smem: its base), free once every copy has
// landed and been read and every wgmma has completed.
__device__ __forceinline__ MergeScratch merge_scratch_over_kv(uint8_t* smem) {
  float* merge_f32 = reinterpret_cast<float*>(smem + Smem::kKv + kMergeWarps * 32 * 4 * 16);
  return MergeScratch{merge_f32, merge_f32 + kMergeWarps, reinterpret_cast<float4*>(smem + Smem::kKv)};
}

__device__ __forceinline__ int32_t load_acquire(const int32_t* counter) {
  int32_t v;
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(counter) : "memory");
  return v;
}

// Pieces a warp loads per round trip of a quarter-row item: 8 warps x 17 = 136, so that a
// sequence split over every partition of a 132-SM GPU merges in one trip (16 a warp left the
// 129th piece of batch 1 from 16k tokens to a second dependent trip).
inline constexpr int kQuarterUnroll = 17;

// Waits for all n pieces of the job's sequence, then merges this CTA's items of its query tile
// (rows tile_row0 .. of the sequence) and leaves the counter as it found it (0). Quarter-row
// items when each CTA gets at most one (batch 1, 16 heads: 16 rows x 4 quarters over 64 pieces),
// whole rows otherwise, by all 8 warps or a row a warp (merge_rows_by_warps: several rows of few
// pieces each). All threads; scratch is free shared memory.
__device__ __forceinline__ void merge_split_tile(const MlaDecodeParams& p, const MergeJob& job, int tile_row0,
                                                 const MergeScratch& scratch) {
  int32_t* counter = merge_counter(p, job.first_slot);
  const int n = job.num_pieces;
  int departed = 0;
  if (threadIdx.x == 0) {
    // A piece that never arrives (a broken schedule, or a grid that is not resident at once)
    // would hang the GPU: after kMaxMergePolls polls (seconds) the kernel traps instead, which
    // the next CUDA call reports as a launch failure.
    for (uint32_t polls = 0; load_acquire(counter) < n; ++polls) {
      if (polls == kMaxMergePolls) __trap();
    }
    departed = atomicAdd(counter, 1);  // its latency hides behind the merge
  }
  merge_sync();  // every piece's partials are visible to the merging threads (thread 0's acquire)
  const int rows = min(kTileRows, job.rows - tile_row0);
  if (4 * rows <= n) {
    for (int item = job.piece; item < 4 * rows; item += n) {
      const int row = tile_row0 + item / 4;
      merge_item<4, kQuarterUnroll>(p, job.first_slot, n, row, item % 4, static_cast<int64_t>(job.row0) + row,
                                    scratch);
    }
  } else if (!merge_rows_by_warps(n, rows)) {
    for (int item = job.piece; item < rows; item += n) {
      const int row = tile_row0 + item;
      merge_item<1, 8>(p, job.first_slot, n, row, 0, static_cast<int64_t>(job.row0) + row, scratch);
    }
  } else {
    const int warp = static_cast<int>(threadIdx.x) / 32;
    for (int item = job.piece + n * warp; item < rows; item += n * kMergeWarps) {
      const int row = tile_row0 + item;
      merge_row_warp<8>(p, job.first_slot, n, row, static_cast<int64_t>(job.row0) + row);
    }
  }
  if (threadIdx.x == 0 && departed == 2 * n - 1) atomicExch(counter, 0);  // the last one past the wait
}

}  // namespace mlaserve::ops::sm90
