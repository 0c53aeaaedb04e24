// MLA decode on Hopper (sm_90a): what the decode kernels (mla_decode_sm90_seesaw.cuh,
// mla_decode_sm90_ring.cuh, mla_decode_sm90_split_s.cuh) share, so that each kernel file holds
// only how its warpgroups divide a block's work. The design note, shared-memory map and PTX pieces:
// mla_decode_sm90.cuh.
//
//   - the walk: a CTA's partition is a run of (sequence, block) work items (WorkItem, settle,
//     advance); a sequence's part of it is a piece (Piece, start_piece);
//   - the set-up: the 1 KB-aligned shared-memory base, the Q tile's zero tail, the TMA copies of
//     a query tile and of a KV block, the zeroed rows past a sequence's end;
//   - the online softmax of a block, on this thread's slice of S (s[i]: row r0 + 8 * (i / 2 % 2),
//     key key0 + 8 * (i / 4) + i % 2, N = 32 keys a row for the seesaw, 16 for split S):
//     the mask and the row max, exp2 of the scaled scores and the row sums, P to shared memory,
//     O's rescale;
//   - the named barriers, the warp-uniform branch guard and the m64n16 wgmma around them;
//   - O += P V on one warpgroup's 256 channels, and the epilogue's row stores and lse.
// Every helper is inlined (the split-S kernel writes out zero_tail_rows, see there); a change
// here changes every kernel's machine code.
#pragma once

#include "ops/cuda/mla_decode_sm90.cuh"

namespace mlaserve::ops::sm90 {

inline constexpr uint64_t kStageStep = kTileBytes >> 4;  // descriptor offset of the second KV stage

// ---- the walk over a partition -------------------------------------------------------------

// A stage's position in the partition's walk: block `block` of sequence `seq`; this partition's
// piece of seq ends before block_end.
struct WorkItem {
  int seq;
  int block;
  int block_end;
};

// Moves `it` to the first (sequence, block) at or after it that the partition reads and that
// this CTA's query tile has rows in; false when the partition has no more.
__device__ __forceinline__ bool settle(WorkItem& it, const MlaPartition& part, const MlaDecodeParams& p,
                                       int tile_row0) {
  while (it.seq < part.end_seq || (it.seq == part.end_seq && it.block < part.end_block)) {
    const int n_blocks = (p.seq_lens[it.seq] + 63) / 64;
    it.block_end = it.seq == part.end_seq ? part.end_block : n_blocks;
    const int rows = (p.query_start[it.seq + 1] - p.query_start[it.seq]) * p.n_heads;
    if (it.block < it.block_end && tile_row0 < rows) return true;
    ++it.seq;
    it.block = 0;
  }
  return false;
}

// Moves `it` (settled) to the next block the partition reads for this tile; false when there is
// none. Within a sequence, settle's loads (its length and query rows) are not repeated.
__device__ __forceinline__ bool advance(WorkItem& it, const MlaPartition& part, const MlaDecodeParams& p,
                                        int tile_row0) {
  if (++it.block < it.block_end) return true;
  ++it.seq;
  it.block = 0;
  return settle(it, part, p, tile_row0);
}

// What a CTA needs to know about the sequence whose piece it is computing.
struct Piece {
  int seq_len;    // keys
  int q_len;      // query tokens
  int rows;       // q_len * n query rows
  int64_t row0;   // flat [T * n] index of the sequence's first query row
  int index;      // which piece of the sequence (slot offset when it is split)
  int limit[2];   // last key position visible to this thread's rows r0 and r0 + 8
};

__device__ __forceinline__ Piece start_piece(const MlaDecodeParams& p, const MlaPartition& part, int seq,
                                             int tile_row, int tile_row0) {
  Piece pc;
  pc.seq_len = p.seq_lens[seq];
  const int q_begin = p.query_start[seq];
  pc.q_len = p.query_start[seq + 1] - q_begin;
  pc.rows = pc.q_len * p.n_heads;
  pc.row0 = static_cast<int64_t>(q_begin) * p.n_heads;
  pc.index = seq == part.begin_seq ? part.begin_piece : 0;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int i = tile_row0 + tile_row + 8 * h;  // row within the sequence: token j = i / n
    pc.limit[h] = i < pc.rows ? pc.seq_len - pc.q_len + i / p.n_heads : pc.seq_len - 1;
  }
  return pc;
}

// ---- set-up and copies ---------------------------------------------------------------------

// The dynamic shared memory rounded up to 1 KB (the 128-byte swizzle repeats every 1024 bytes):
// the base of Smem's offsets.
__device__ __forceinline__ uint8_t* smem_base(uint8_t* smem_raw) {
  return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
}

// Warms L2 with the step's metadata that the walk's first dependent loads read: this
// partition's entry, the first 128-byte line of seq_lens, query_start, seq_splits and the merge
// counters (all of them below 32 sequences), and the first 32 lines of the block table (4 KB:
// batch 1 up to 64k tokens). Between two layers' calls the weight streams evict these lines, and
// every dependent load that misses L2 is an HBM round trip. A prefetch returns nothing, so it may
// run before grid_dependency_wait (it cannot see stale data: writes land in L2). Lanes of one warp.
__device__ __forceinline__ void prefetch_step_metadata(const MlaDecodeParams& p, int lane) {
  auto prefetch = [](const void* line) { asm volatile("prefetch.global.L2 [%0];\n" ::"l"(line)); };
  if (static_cast<int64_t>(lane) * 32 < static_cast<int64_t>(p.num_seqs) * p.max_blocks) {
    prefetch(p.block_table + lane * 32);
  }
  if (lane == 0) prefetch(p.parts + blockIdx.y);
  if (lane == 1) prefetch(p.seq_lens);
  if (lane == 2) prefetch(p.query_start);
  if (lane == 3) prefetch(p.seq_splits);
  if (lane == 4) prefetch(p.merge_counters);
}

// A tile with fewer query rows (16 heads: 16) copies only those; rows q_box_rows .. kRows - 1 of
// the Q tile [kRows x 576] at q_tile stay 0. All kThreads threads, thread tid.
template <int kRows = kTileRows>
__device__ __forceinline__ void zero_q_tail(uint8_t* q_tile, int q_box_rows, int tid) {
  for (int i = q_box_rows * 72 + tid; i < kRows * 72; i += kThreads) {
    const int row = i / 72, chunk = i % 72;
    *reinterpret_cast<uint4*>(q_tile + chunk / 8 * kRows * 128 + row * 128 + chunk % 8 * 16) = make_uint4(0, 0, 0, 0);
  }
}

// Starts the copy of this CTA's query tile of sequence seq ([q_box_rows x 576] from its first
// query row + tile_row0) into the [kRows x 576] Q tile at s_q, completing on bar_q.
template <int kRows = kTileRows>
__device__ __forceinline__ void load_q_tile(const MlaDecodeParams& p, uint32_t s_q, int seq, int tile_row0,
                                            uint32_t bar_q) {
  tma_load_tile<kRows>(s_q, &p.q_map, p.query_start[seq] * p.n_heads + tile_row0, p.q_box_rows, bar_q);
}

// The cache block that holds block `it` of its sequence.
__device__ __forceinline__ int kv_block_id(const MlaDecodeParams& p, const WorkItem& it) {
  return p.block_table[static_cast<int64_t>(it.seq) * p.max_blocks + it.block];
}

// Starts the copy of KV block `it` ([64 x 576], found through the block table) into KV stage
// `stage` of the stages at s_kv, completing on that stage's barrier bar_kv + 8 * stage.
__device__ __forceinline__ void load_kv_block(const MlaDecodeParams& p, uint32_t s_kv, const WorkItem& it,
                                              int stage, uint32_t bar_kv) {
  tma_load_kv_tile(s_kv + stage * kTileBytes, &p.kv_map, kv_block_id(p, it) * 64, bar_kv + 8 * stage,
                   p.kv_evict_first);
}

// Zeroes rows valid .. 63 of a KV tile (the sequence ends inside the block: those rows hold
// another step's bytes, maybe NaN, and V must be finite), `threads` threads from index t.
__device__ __forceinline__ void zero_tail_rows(uint8_t* tile, int valid, int t, int threads) {
  for (int i = t; i < (64 - valid) * 72; i += threads) {
    const int chunk = i % 8, cb = i / 8 % 9, row = valid + i / 72;
    *reinterpret_cast<uint4*>(tile + cb * kColBlockBytes + row * 128 + chunk * 16) = make_uint4(0, 0, 0, 0);
  }
}

// ---- named barriers ------------------------------------------------------------------------

// Named CTA barriers (bar.sync / bar.arrive; 0 is __syncthreads). A barrier with `threads`
// participants completes when that many have arrived; bar.arrive does not wait.
enum NamedBarrier : int {
  kBarWg0 = 3,  // warpgroup 0 alone (128 threads; the ring kernel and its narrow softmax)
};
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// ---- wgmma helpers -------------------------------------------------------------------------

// x as lane 0 has it: the compiler then treats branches on it as uniform in the warp, which
// ptxas needs around wgmma (a wait or fence it inserts in a path it thinks divergent serialises
// every wgmma of the kernel, C7518 / C7520). The values are uniform in the warpgroup already.
__device__ __forceinline__ bool warp_uniform(bool x) { return __shfl_sync(0xffffffffu, x ? 1 : 0, 0) != 0; }

// D[64 x 16] (+)= A B^T over 16 of K, B K-major, A K-major (the ring kernel's S^T = K Q^T) or
// MN-major (its O^T += V^T P^T).
template <gmma::Major kMajorA, size_t... I>
__device__ __forceinline__ void wgmma_64x16(uint64_t a, uint64_t b, float (&d)[8], gmma::ScaleOut scale,
                                            std::index_sequence<I...>) {
  gmma::MMA_64x16x16_F32BF16BF16_SS<kMajorA, gmma::Major::K>::fma(a, b, d[I]..., scale);
}

// ---- the online softmax of a block ---------------------------------------------------------

// Scores of keys past a row's last visible key -> -inf (bottom-right causal: only a block that
// reaches past the first query token's keys, `masked`, has any), and this thread's row maxima
// mx[2] over its slice s[N] (s[0] is key key0). The scores stay unscaled: the scale is folded into
// exp_scores' exponent, and scale_log2 > 0 keeps the maxima in order.
template <int N>
__device__ __forceinline__ void mask_scores_row_max(float (&s)[N], int key0, bool masked, const int (&limit)[2],
                                                    float (&mx)[2]) {
  if (masked) {
#pragma unroll
    for (int i = 0; i < N; ++i) {
      if (key0 + 8 * (i / 4) + i % 2 > limit[i / 2 % 2]) s[i] = -INFINITY;
    }
  }
#pragma unroll
  for (int i = 0; i < N; ++i) mx[i / 2 % 2] = fmaxf(mx[i / 2 % 2], s[i]);
}

// The max over the 4 threads of a quad (lanes 4k .. 4k + 3 hold one row's keys).
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

// How far (log2 units) a block's row max may rise above the running max before the running max
// moves: up to it, exp2(score - m) stays <= 256, far inside bf16 P and the fp32 sums and O.
inline constexpr float kLazyRescaleLog2 = 8.0f;

// Moves a row's running max m (log2 units) to block_max when that is more than kLazyRescaleLog2
// above it (at once from -inf), so that past a piece's first blocks O's and l's rescale is
// mostly skipped (alpha = 1: scale_rows does nothing); m_use is the offset of this block's exp2
// (0 for a row with nothing visible yet), the return value the rescale exp2(m_old - m_use).
__device__ __forceinline__ float update_row_max(float& m, float block_max, float& m_use) {
  const float m_new = block_max > m + kLazyRescaleLog2 ? block_max : m;
  m_use = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing visible yet stays at 0
  const float alpha = ptx::fast_exp2(m - m_use);
  m = m_new;
  return alpha;
}

// s[i] = exp2(s[i] * scale_log2 - m_use[row]) (one FFMA and one MUFU a score; a masked -inf
// gives 0); sum (the caller's zeros) gets the block's row sums of this thread's keys, and the
// running row sums l = l * alpha + sum.
template <int N>
__device__ __forceinline__ void exp_scores(float (&s)[N], float scale_log2, const float (&m_use)[2],
                                           const float (&alpha)[2], float (&sum)[2], float (&l)[2]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
    s[i] = ptx::fast_exp2(fmaf(s[i], scale_log2, -m_use[i / 2 % 2]));
    sum[i / 2 % 2] += s[i];
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) l[h] = l[h] * alpha[h] + sum[h];
}

// P (bf16) into the [64 rows][64 keys] P tile: this thread's keys of rows r0, r0 + 8, from
// 16-byte chunk chunk0 (keys 8 * chunk0 ..) on. Row r, keys 8 c .. 8 c + 7 sit in chunk
// c ^ (r % 8) of its 128-byte row.
template <int N>
__device__ __forceinline__ void store_p(uint8_t* p_tile, const float (&s)[N], int r0, int lane, int chunk0) {
#pragma unroll
  for (int j = 0; j < N / 4; ++j) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = r0 + 8 * h, chunk = chunk0 + j;
      *reinterpret_cast<__nv_bfloat162*>(p_tile + r * 128 + ((chunk ^ (r % 8)) * 16) + (lane % 4) * 4) =
          __floats2bfloat162_rn(s[4 * j + 2 * h], s[4 * j + 2 * h + 1]);
    }
  }
}

// O[64 x 256] *= alpha per row, skipped when no row of the warp moved its max.
// o[4 j + 2 h + c]: row r0 + 8 h, channel 8 j + 2 * (lane % 4) + c of the warpgroup's 256.
__device__ __forceinline__ void scale_rows(float (&o)[128], const float (&alpha)[2]) {
  if (__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f)) {
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      o[4 * j + 0] *= alpha[0];
      o[4 * j + 1] *= alpha[0];
      o[4 * j + 2] *= alpha[1];
      o[4 * j + 3] *= alpha[1];
    }
  }
}

// Issues O[64 x 256] += P[64 x 64] V[64 x 256] as one wgmma group; the caller waits for it.
// k-step kk = 16 keys: 32 bytes along P's rows, 16 rows (2 KB) down V's column blocks.
__device__ __forceinline__ void issue_pv(uint64_t p_desc, uint64_t v_desc, float (&o)[128]) {
  ptx::fence_registers(o);
  ptx::wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    wgmma_64x256(p_desc + static_cast<uint64_t>((kk * 32) >> 4),
                 v_desc + static_cast<uint64_t>((kk * 16 * 128) >> 4), o, std::make_index_sequence<128>{});
  }
  ptx::wgmma_commit();
}

// ---- the epilogue --------------------------------------------------------------------------

// A row's log-sum-exp in natural log, from its max m (log2 units) and its sum over all the
// piece's keys, and inv = 1 / that sum (both stay finite for a row that saw no key: 0, -inf).
__device__ __forceinline__ float softmax_lse_inv(float m, float total, float& inv) {
  inv = total > 0.0f ? 1.0f / total : 0.0f;
  return total > 0.0f ? (m + log2f(total)) * 0.69314718f : -INFINITY;
}

// Row i (of the sequence's q_len * n) in the piece's workspace slot: its partial_out / partial_lse row.
__device__ __forceinline__ int64_t piece_slot_row(const MlaDecodeParams& p, const MlaSeqSplit& split, const Piece& pc,
                                            int i) {
  return static_cast<int64_t>(split.first_slot + pc.index) * p.partial_rows + i;
}

// Row i's lse of piece pc: to lse when the sequence is one piece, else to the piece's slot.
__device__ __forceinline__ void store_piece_lse(const MlaDecodeParams& p, const MlaSeqSplit& split, const Piece& pc,
                                                int i, float lse) {
  if (split.num_pieces == 1) {
    p.lse[pc.row0 + i] = lse;
  } else {
    p.partial_lse[piece_slot_row(p, split, pc, i)] = lse;
  }
}

// This thread's 64 channels of O's row r0 + 8 h, times inv, to dst: the row's first channel
// (col0 = the warpgroup's 256 * wg + 2 * (lane % 4)) in out (bf16) or partial_out (fp32).
__device__ __forceinline__ void store_o_row(__nv_bfloat16* dst, const float (&o)[128], int h, float inv) {
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    *reinterpret_cast<__nv_bfloat162*>(dst + 8 * j) =
        __floats2bfloat162_rn(o[4 * j + 2 * h] * inv, o[4 * j + 2 * h + 1] * inv);
  }
}
__device__ __forceinline__ void store_o_row(float* dst, const float (&o)[128], int h, float inv) {
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    *reinterpret_cast<float2*>(dst + 8 * j) = make_float2(o[4 * j + 2 * h] * inv, o[4 * j + 2 * h + 1] * inv);
  }
}

}  // namespace mlaserve::ops::sm90
