// MLA decode on Hopper (sm_90a), the seesaw kernel (FlashMLA's schedule, written from its
// public write-up): the two warpgroups take a piece's blocks in pairs (A, B) and each computes the
// scores and softmax of one of them, so that one warpgroup's softmax runs while the other's GEMMs
// keep the tensor cores busy. For more than 16 query rows a sequence (use_partitioned_kernels,
// use_ring_kernel). The shared design note: mla_decode_sm90.cuh; the pieces the decode kernels
// share: mla_decode_sm90_common.cuh.
//
// Per pair (A in KV stage 0, owned by warpgroup 0; B in stage 1, owned by warpgroup 1; a piece
// with an odd number of blocks ends on a pair without B):
//   wg 0: S_A = Q K_A^T; softmax from the running max m (after the last B) -> m_A, scale a_A,
//         P_A (bf16, in Smem's P region); hands m_A, a_A and P_A over (barrier A);
//         O_L = O_L a_A + P_A V_A[:, 0:256]; waits for B's hand-over (barrier B);
//         O_L = O_L a_B + P_B V_B[:, 0:256], waited for before the next pair's S_A is issued.
//   wg 1: S_B = Q K_B^T; waits for A's hand-over; O_R = O_R a_A + P_A V_A[:, 256:512] (issued
//         before its own softmax, which then overlaps it); softmax from m_A -> m_B, a_B, P_B
//         (over B's rope box, which S_B no longer needs); hands them over;
//         O_R = O_R a_B + P_B V_B[:, 256:512].
// The running max moves lazily (update_row_max): a_A and a_B are 1 past a piece's first blocks,
// so the rescale between a warpgroup's two P V products (which has to wait for the first) is
// rare. Each warpgroup keeps the row sums of its own blocks, rescaled by every a; the two are
// added at the piece's end.
// The copies: a stage's 9 boxes (64 channels) come in three copies (V's halves, four boxes each,
// and the rope box; seesaw_copy), each with a barrier that it landed and one that it is free; S
// visits the boxes in the order they are freed (seesaw_box). A third warpgroup, the producer,
// walks the partition and starts each copy as soon as it is free: A's rope box after S_A, V_A's
// first half after wg 0's P V, its second half after wg 1's; V_B's first half after wg 0's P V_B
// (waited for before the next S_A is issued, so that B's copies start while S_A runs and
// warpgroup 1's S_B waits for them less), its second half after wg 1's, the rope box (P_B's
// place) after both. A TMA copy costs the thread that issues it ~100-460 cycles whatever its size
// (tools/tma_issue_probe.cu), which a softmax warp cannot spare. The producer gives its registers
// to the two others (setmaxnreg). A block's stage is its position in its piece, mod 2.
// With kv_multicast (use_kv_multicast: 128 heads, where a sequence's query tiles come in pairs
// that walk the same blocks), query tiles 2k and 2k + 1 of a partition run as one 2-CTA cluster:
// each copy of a block is issued by one of the two producers (seesaw_copy_issuer) into both CTAs'
// stages (TMA multicast), so that each block crosses from L2 once, not twice (tools/
// l2_feed_probe.cu: at b128 x 4096 the copies alone take 205 us the one way, 174 the other, one
// H200), and a copy is started again only once the readers of both CTAs have freed it (their
// copy-free barriers count both CTAs' warps). The two CTAs then run in step, a block at a time.
// ptxas serialises every wgmma of the kernel (C7514 / C7515) when an accumulator is read or
// written while a wgmma of the same pipeline stage may be pending, or when it cannot tell which
// groups a wait retires where paths meet: each warpgroup's loops are compiled apart, the waits sit
// on straight paths, and O is rescaled only after a wait. Check -Xptxas -v for C75xx after edits.
#pragma once

#include "ops/cuda/fragment_store.cuh"
#include "ops/cuda/mla_decode_sm90_common.cuh"
#include "ops/cuda/mla_decode_sm90_merge.cuh"

#include <type_traits>
#include <utility>

namespace mlaserve::ops::sm90 {

template <size_t... I>
__device__ __forceinline__ void wgmma_64x64(uint64_t a, uint64_t b, float (&d)[32], gmma::ScaleOut scale,
                                            std::index_sequence<I...>) {
  gmma::MMA_64x64x16_F32BF16BF16_SS<gmma::Major::K, gmma::Major::K>::fma(a, b, d[I]..., scale);
}
// k-step j (16 channels) of column block cb of a block's scores S[64 x 64] = Q[64 x 576] K[64 x 576]^T
// (`first` overwrites s). s[i]: row r0 + 8 * (i / 2 % 2), key 8 * (i / 4) + 2 * (lane % 4) + i % 2.
// Q and K are K-major in the same layout, so one k-step offset serves both. Each offset passes
// through an empty volatile asm, which keeps its place among the wgmma asms: otherwise the
// compiler computes all 72 descriptors ahead and runs out of registers beside O and S (and a loop
// instead makes ptxas serialise the wgmmas, C7520).
__device__ __forceinline__ void issue_score_step(uint64_t q_desc, uint64_t k_desc, float (&s)[32], int cb, int j,
                                                 bool first) {
  uint64_t step = static_cast<uint64_t>((cb * kColBlockBytes + j * 32) >> 4);
  asm volatile("" : "+l"(step));
  wgmma_64x64(q_desc + step, k_desc + step, s, first ? gmma::ScaleOut::Zero : gmma::ScaleOut::One,
              std::make_index_sequence<32>{});
}

// The epilogue's row stores, 16 bytes a lane. This thread holds 64 channels of O's row r0 + 8 h:
// o[4 j + 2 h + e] is channel 8 j + 2 (lane % 4) + e of the warpgroup's 256. Stored as they are,
// that is a 4- (bf16) or 8-byte (fp32) store a j, each warp store 8 rows x 32 or 64 bytes, and at
// a piece's end both warpgroups' 2 x 64 stores a thread queued up on the SM's store path (a clock64
// trace: 5,000-10,000 cycles a piece end, bench/NOTES-mla-decode.md). So the quad first trades
// values: bf16 through a 4 x 4 transpose (fragment_store.cuh; lane q then holds channels
// 32 g + 8 q .. + 7 of each group g of 32), fp32 between lane pairs (the even lane then holds
// channels 8 j + 2 q .. + 3 of even j, the odd one those of odd j). Every lane of the warp calls
// them (the shuffles); row null: nothing stored. The split-S kernel keeps store_o_row: its 16-row
// tiles store from one warp a warpgroup, where the shuffles' latency cost more than the stores
// saved.

// Row h's channels times inv to row (the warpgroup's first channel of the row in out).
__device__ __forceinline__ void store_o_row16(__nv_bfloat16* row, const float (&o)[128], int h, float inv, int lane) {
#pragma unroll
  for (int g = 0; g < 8; ++g) {
    uint32_t w[4];
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      const int j = 4 * g + t;
      w[t] = gpu::bf16x2_bits(o[4 * j + 2 * h] * inv, o[4 * j + 2 * h + 1] * inv);
    }
    gpu::quad_transpose(w, lane);
    if (row != nullptr) *reinterpret_cast<uint4*>(row + 32 * g + 8 * (lane % 4)) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

// Row h's channels times inv to row (the warpgroup's first channel of the row in partial_out).
__device__ __forceinline__ void store_o_row16(float* row, const float (&o)[128], int h, float inv, int lane) {
  const bool odd = lane & 1;
#pragma unroll
  for (int j = 0; j < 32; j += 2) {
    const float2 a = make_float2(o[4 * j + 2 * h] * inv, o[4 * j + 2 * h + 1] * inv);          // j
    const float2 b = make_float2(o[4 * j + 4 + 2 * h] * inv, o[4 * j + 4 + 2 * h + 1] * inv);  // j + 1
    const float gx = __shfl_xor_sync(0xffffffffu, odd ? a.x : b.x, 1);
    const float gy = __shfl_xor_sync(0xffffffffu, odd ? a.y : b.y, 1);
    const float4 v = odd ? make_float4(gx, gy, b.x, b.y) : make_float4(a.x, a.y, gx, gy);
    if (row != nullptr) *reinterpret_cast<float4*>(row + 8 * (j + (odd ? 1 : 0)) + 2 * (lane % 4 & 2)) = v;
  }
}

// Writes one warpgroup's 256 output channels (from col0) of this thread's rows r0 and r0 + 8 at
// a piece's end: to out when the sequence is one piece, else to the piece's workspace slot. (A
// warp-uniform return for warps whose 16 rows are all past the tile's made ptxas spill.)
__device__ __forceinline__ void store_piece(const MlaDecodeParams& p, const Piece& pc, const MlaSeqSplit& split,
                                            int r0, int tile_row0, int col0, const float (&o)[128],
                                            const float (&inv)[2], int lane) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int i = tile_row0 + r0 + 8 * h;
    const bool valid = i < pc.rows;
    if (split.num_pieces == 1) {
      store_o_row16(valid ? p.out + (pc.row0 + i) * 512 + col0 : nullptr, o, h, inv[h], lane);
    } else {
      store_o_row16(valid ? p.partial_out + piece_slot_row(p, split, pc, i) * 512 + col0 : nullptr, o, h, inv[h],
                    lane);
    }
  }
}

// The seesaw's shared memory: Smem's Q tile, KV stages and P region (P_A; P_B sits over B's rope
// box) and its barrier for the Q tile; in place of Smem's row arrays, the
// hand-overs between the warpgroups: row max and scale of A (warpgroup 0 writes) and of B
// (warpgroup 1), [64] f32 each; after Smem's barriers the row sums at a piece's end (warpgroup 1's,
// and the totals that warpgroup 0 hands back) and the copies' barriers.
struct SeesawSmem {
  static constexpr int kMaxA = Smem::kRowMax;
  static constexpr int kScaleA = kMaxA + 64 * 4;
  static constexpr int kMaxB = kScaleA + 64 * 4;
  static constexpr int kScaleB = kMaxB + 64 * 4;
  static_assert(kScaleB + 64 * 4 <= Smem::kBarriers, "the hand-overs fit Smem's row arrays");
  static constexpr int kSums = Smem::kBarriers + 5 * 8;  // f32 [2][64]: the total row sums, warpgroup 1's
  static constexpr int kBoxFull = kSums + 2 * 64 * 4;    // mbarriers [2 stages][3 copies]: the copy landed
  static constexpr int kCopyFree = kBoxFull + 6 * 8;     // mbarriers [2 stages][3 copies]: its readers are done
  static constexpr int kPieceEnd = kCopyFree + 6 * 8;    // mbarriers: warpgroup 1's row sums in, the totals in
  static constexpr int kMergeJobs = kPieceEnd + 2 * 8;   // [2] MergeJob: the split pieces to merge at the end
  static constexpr int kNumJobs = kMergeJobs + 2 * sizeof(MergeJob);  // i32: how many (thread 0 writes)
  static constexpr int kJobsReady = kNumJobs + 8;        // mbarrier: thread 0 has written every job
  static constexpr int kBytes = kJobsReady + 8;
};
inline constexpr int kSeesawSmemBytes = SeesawSmem::kBytes + 1024;  // + room to align the base
inline constexpr int kSeesawThreads = kThreads + 128;                // two consumer warpgroups, the producer
inline constexpr int kSeesawConsumerRegs = 232, kSeesawProducerRegs = 40;
static_assert(2 * kSeesawConsumerRegs + kSeesawProducerRegs <= 3 * (65536 / kSeesawThreads / 8 * 8),
              "the warpgroups' registers fit those the launch gives the CTA");
static_assert(kSeesawSmemBytes <= 227 * 1024, "over the sm_90 shared-memory limit per CTA");

enum SeesawBarrier : int {
  kBarA = 1,         // warpgroup 0 arrives: m_A, a_A and P_A are in shared memory
  kBarB = 2,         // warpgroup 1 arrives: m_B, a_B and P_B are
  kBarOwnWg0 = 3,    // warpgroup 0 alone: its P stores are done before its own wgmma reads them
  kBarOwnWg1 = 4,    // warpgroup 1 alone
};

// bar.sync of `threads` threads at barrier `id` that also returns whether any of them passed
// pred = true, the same value in every thread (a branch on it around wgmma waits is uniform in the
// warpgroup, as wgmma.wait_group requires).
__device__ __forceinline__ bool named_barrier_any(int id, int threads, bool pred) {
  uint32_t any;
  asm volatile(
      "{\n"
      ".reg .pred p, q;\n"
      "setp.ne.u32 p, %1, 0;\n"
      "barrier.red.or.pred q, %2, %3, p;\n"
      "selp.u32 %0, 1, 0, q;\n"
      "}\n"
      : "=r"(any)
      : "r"(pred ? 1u : 0u), "r"(id), "r"(threads)
      : "memory");
  return warp_uniform(any != 0);
}

// A block's KV stage: its position in its piece of the partition, mod 2.
__device__ __forceinline__ int seesaw_stage(const WorkItem& it, const MlaPartition& part) {
  return (it.block - (it.seq == part.begin_seq ? part.begin_block : 0)) & 1;
}

// A stage's boxes (column blocks) come in three copies: V's first half (boxes 0-3), its second
// half (4-7), each one 3-D copy of four boxes (kv_group_map), and the rope box (8).
__device__ __forceinline__ constexpr int seesaw_copy(int cb) { return cb / 4; }

// The warps that free copy c of stage s (arrive on its copy-free barrier): warpgroup 0's for
// V_A's first half, A's rope box and V_B's first half; warpgroup 1's for V's second halves; all 8
// for B's rope box, where P_B is.
__device__ __forceinline__ constexpr int seesaw_copy_readers(int stage, int copy) {
  return stage == 1 && copy == 2 ? 8 : 4;
}

// With kv_multicast, the cluster rank whose producer issues copy `copy` of every block: V's
// second half from rank 1, the rest (36 KB of a block's 72) from rank 0.
__device__ __forceinline__ constexpr int seesaw_copy_issuer(int copy) { return copy == 1 ? 1 : 0; }

// Starts copy `copy` (seesaw_copy) of cache block block_id into stage `stage`, completing on its
// barrier box_full + 8 * (3 * stage + copy). With kv_multicast this CTA (cluster rank `rank`)
// expects every copy on its barrier but issues only its own (seesaw_copy_issuer), into both CTAs,
// evict-first (use_kv_evict_first: each block crosses from L2 once).
__device__ __forceinline__ void load_kv_copy(const MlaDecodeParams& p, uint32_t s_kv, int block_id, int stage,
                                             uint32_t box_full, int copy, int rank) {
  const uint64_t policy = p.kv_evict_first ? ptx::l2_evict_first_policy() : 0;
  const uint32_t bar = box_full + 8 * (3 * stage + copy);
  const uint32_t dst = s_kv + stage * kTileBytes + 4 * copy * kColBlockBytes;
  ptx::mbarrier_arrive_expect_bytes(bar, copy == 2 ? kColBlockBytes : 4 * kColBlockBytes);
  if (p.kv_multicast) {
    if (seesaw_copy_issuer(copy) != rank) return;
    if (copy == 2) {
      ptx::tma_load_2d_multicast(dst, &p.kv_map, 8 * 64, block_id * 64, bar, 0x3, policy);
    } else {
      ptx::tma_load_3d_multicast(dst, &p.kv_group_map, 0, block_id * 64, 4 * copy, bar, 0x3, policy);
    }
    return;
  }
  if (copy == 2) {
    tma_load_kv_box(dst, &p.kv_map, 8, block_id * 64, bar, p.kv_evict_first, policy);
    return;
  }
  if (p.kv_evict_first) {
    ptx::tma_load_3d_hint(dst, &p.kv_group_map, 0, block_id * 64, 4 * copy, bar, policy);
  } else {
    ptx::tma_load_3d(dst, &p.kv_group_map, 0, block_id * 64, 4 * copy, bar);
  }
}

// The order in which S visits a stage's boxes: the order in which they are copied again. Stage
// 0 (A): the rope box (free once S_A is done), V's first half (once warpgroup 0's P V is), V's
// second half. Stage 1 (B): V's second half (once warpgroup 1's P V is), the rest.
template <int kStage>
__device__ __forceinline__ constexpr int seesaw_box(int i) {
  if constexpr (kStage == 0) {
    return (i + 8) % 9;
  } else {
    return i < 4 ? i + 4 : i < 8 ? i - 4 : 8;
  }
}

// Issues a block's scores (issue_score_step's 36 k-steps) as one wgmma group, each column block's
// 4 k-steps once that box's copy has landed, in seesaw_box order (bars: the stage's 3 copy
// barriers, completing with this parity); the caller waits for the group.
template <int kStage>
__device__ __forceinline__ void issue_scores_by_box(uint64_t q_desc, uint64_t k_desc, float (&s)[32], uint32_t bars,
                                                    uint32_t parity) {
#pragma unroll
  for (int ks = 0; ks < 36; ++ks) {
    const int box = seesaw_box<kStage>(ks / 4);
    if (ks % 4 == 0 && box % 4 == 0) {  // the first box of its copy, in either order
      ptx::mbarrier_wait(bars + 8 * seesaw_copy(box), parity);
      ptx::wgmma_fence();
    }
    issue_score_step(q_desc, k_desc, s, box, ks % 4, ks == 0);
  }
  ptx::wgmma_commit();
}

// The producer (one thread of the third warpgroup): walks the CTA's partition and copies each
// block into its stage, copy by copy in the order S reads them (seesaw_box), each once the
// readers of the stage's last block have freed it (copy_free: a phase per use of the stage).
__device__ __forceinline__ void seesaw_produce(const MlaDecodeParams& p, uint32_t s_kv, uint32_t box_full,
                                               uint32_t copy_free, int tile_row0, int rank) {
  const MlaPartition part = p.parts[blockIdx.y];
  WorkItem it{part.begin_seq, part.begin_block, 0};
  if (!settle(it, part, p, tile_row0)) return;
  uint32_t used = 0;         // bit s: stage s holds an earlier block
  uint32_t free_parity = 0;  // bit s: the phase of stage s's copy-free barriers to wait for next
  do {
    const int stage = seesaw_stage(it, part), block_id = kv_block_id(p, it);
    const bool wait = (used >> stage) & 1;
#pragma unroll
    for (int i = 0; i < 3; ++i) {
      const int c = stage == 0 ? (i + 2) % 3 : i == 2 ? 2 : 1 - i;  // 2, 0, 1 or 1, 0, 2: as S reads them
      if (wait) ptx::mbarrier_wait(copy_free + 8 * (3 * stage + c), (free_parity >> stage) & 1);
      load_kv_copy(p, s_kv, block_id, stage, box_full, c, rank);
    }
    free_parity ^= (used & (1u << stage));
    used |= 1u << stage;
  } while (advance(it, part, p, tile_row0));
}

// The CTA's in-kernel merges (merge_in_kernel), by its two consumer warpgroups after their last
// piece. Not inlined: everything it needs it recomputes, so that nothing stays live through the
// kernel's loops for it (inlined, ptxas kept the shared-memory base and the tile live and spilled).
__device__ __noinline__ void seesaw_merge_jobs(const MlaDecodeParams& p, uint8_t* smem_raw) {
  uint8_t* smem = smem_base(smem_raw);
  // The jobs thread 0 wrote, handed over by an mbarrier (compute-sanitizer's racecheck does not
  // follow a bar.sync of 256 of the CTA's 384 threads here, and reports the reads as races).
  const uint32_t bar_jobs = ptx::smem_addr(smem + SeesawSmem::kJobsReady);
  if (threadIdx.x == 0) ptx::mbarrier_arrive(bar_jobs);
  ptx::mbarrier_wait(bar_jobs, 0);
  const int num_jobs = *reinterpret_cast<const int*>(smem + SeesawSmem::kNumJobs);
  const MergeJob* jobs = reinterpret_cast<const MergeJob*>(smem + SeesawSmem::kMergeJobs);
  if (num_jobs == 0) return;
  const MergeScratch scratch = merge_scratch_over_kv(smem);
  const int tile_row0 = static_cast<int>(blockIdx.x) * kTileRows;
  for (int j = 0; j < num_jobs; ++j) merge_split_tile(p, jobs[j], tile_row0, scratch);
}

__global__ void __launch_bounds__(kSeesawThreads, 1)
    mla_decode_sm90_seesaw_kernel(const __grid_constant__ MlaDecodeParams p) {
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = smem_base(smem_raw);
  float* max_a = reinterpret_cast<float*>(smem + SeesawSmem::kMaxA);
  float* scale_a = reinterpret_cast<float*>(smem + SeesawSmem::kScaleA);
  float* max_b = reinterpret_cast<float*>(smem + SeesawSmem::kMaxB);
  float* scale_b = reinterpret_cast<float*>(smem + SeesawSmem::kScaleB);
  float* totals = reinterpret_cast<float*>(smem + SeesawSmem::kSums);  // [64]: warpgroup 0 writes
  float* sums_b = totals + 64;                                           // [64]: warpgroup 1 writes

  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32;
  const int wg = __shfl_sync(0xffffffffu, tid / 128, 0);  // uniform in the warp (ptxas C7518: warp_uniform)
  const int r0 = (tid / 32 % 4) * 16 + lane / 4;           // this thread's accumulator rows: r0, r0 + 8
  const int tile_row0 = static_cast<int>(blockIdx.x) * kTileRows;
  const int rank = static_cast<int>(blockIdx.x) & 1;  // in the cluster (kv_multicast: clusters of (2, 1, 1))
  const uint32_t s_q = ptx::smem_addr(smem + Smem::kQ), s_kv = ptx::smem_addr(smem + Smem::kKv);
  // Barriers: the Q tile's copy (bar_q); each copy landed (box_full) and freed by its readers
  // (copy_free; V_A's second half also frees P_A's region); at a piece's end, warpgroup 1's row
  // sums and the totals written by all 128 threads of the warpgroup that hands them over
  // (bar_sums, bar_totals).
  const uint32_t bar_q = ptx::smem_addr(smem + Smem::kBarriers) + 16;
  const uint32_t box_full = ptx::smem_addr(smem + SeesawSmem::kBoxFull);
  const uint32_t copy_free = ptx::smem_addr(smem + SeesawSmem::kCopyFree);
  const uint32_t bar_sums = ptx::smem_addr(smem + SeesawSmem::kPieceEnd), bar_totals = bar_sums + 8;

  if (wg < 2) zero_q_tail(smem + Smem::kQ, p.q_box_rows, tid);
  ptx::fence_async_proxy();
  if (tid == 0) {
    for (int i = 0; i < 6; ++i) {
      ptx::mbarrier_init(box_full + 8 * i, 1);
      ptx::mbarrier_init(copy_free + 8 * i, seesaw_copy_readers(i / 3, i % 3) * (p.kv_multicast ? 2 : 1));
    }
    for (int i = 0; i < 2; ++i) ptx::mbarrier_init(bar_sums + 8 * i, 128);
    ptx::mbarrier_init(bar_q, 1);
    *reinterpret_cast<int*>(smem + SeesawSmem::kNumJobs) = 0;
    ptx::mbarrier_init(ptx::smem_addr(smem + SeesawSmem::kJobsReady), 1);
    ptx::mbarrier_init_fence();
  }
  // The last CTA-wide barrier: the producer's idle warps leave after it. With kv_multicast, over
  // the cluster: the peer's barriers are initialised before its copies and arrivals reach them.
  if (p.kv_multicast) {
    ptx::cluster_arrive();
    ptx::cluster_wait();
  } else {
    __syncthreads();
  }

  if (wg == 2) {
    ptx::lower_registers<kSeesawProducerRegs>();
    if (tid == kThreads) {
      if (!p.early_loads) grid_dependency_wait();  // the schedule and tables come from earlier kernels
      seesaw_produce(p, s_kv, box_full, copy_free, tile_row0, rank);
    }
    return;
  }
  ptx::raise_registers<kSeesawConsumerRegs>();
  grid_dependency_wait();
  grid_dependents_launch();
  const MlaPartition part = p.parts[blockIdx.y];
  WorkItem cur{part.begin_seq, part.begin_block, 0};
  if (!settle(cur, part, p, tile_row0)) return;
  if (tid == 0) load_q_tile(p, s_q, cur.seq, tile_row0, bar_q);

  const uint64_t q_desc = ptx::gmma_desc_sw128(s_q, 16, 1024);
  const uint64_t k_desc = ptx::gmma_desc_sw128(s_kv, 16, 1024);
  const uint64_t v_desc = ptx::gmma_desc_sw128(s_kv + wg * 4 * kColBlockBytes, 8192, 1024);
  // P_A in Smem's P region, P_B over B's rope box.
  const uint64_t p_desc_a = ptx::gmma_desc_sw128(ptx::smem_addr(smem + Smem::kP), 16, 1024);
  const uint64_t p_desc_b = ptx::gmma_desc_sw128(s_kv + kTileBytes + 8 * kColBlockBytes, 16, 1024);

  uint32_t kv_parity = 0, p_a_parity = 0, q_parity = 0, piece_parity = 0;
  float s[32], m[2], l[2];  // this warpgroup's block's scores; the running max and sums of its rows
  // The block in `stage`, owned by this warpgroup: when the sequence ends inside it, waits for
  // all of it and zeroes its rows past the end (the other warpgroup reads its V only after this
  // one's hand-over); then S, each box waited for as S reaches it. own_bar: this warpgroup's barrier.
  auto issue_s = [&](auto stage_tag, const WorkItem& it, int seq_len, int own_bar) {
    constexpr int kStage = decltype(stage_tag)::value;
    const uint32_t bars = box_full + 8 * 3 * kStage, parity = (kv_parity >> kStage) & 1;
    const int valid = seq_len - it.block * 64;
    if (valid < 64) {
      for (int c = 0; c < 3; ++c) ptx::mbarrier_wait(bars + 8 * c, parity);
      zero_tail_rows(smem + Smem::kKv + kStage * kTileBytes, valid, tid % 128, 128);
      ptx::fence_async_proxy();
      named_barrier_sync(own_bar, 128);
    }
    issue_scores_by_box<kStage>(q_desc, k_desc + kStage * kStageStep, s, bars, parity);
    kv_parity ^= 1u << kStage;
  };
  // The other warpgroup's block in `stage` (its hand-over came first): this warpgroup's V half
  // has landed, waited for here too so that its reads of it are ordered after the copy.
  auto wait_landed = [&](int stage) {
    ptx::mbarrier_wait(box_full + 8 * (3 * stage + wg), (kv_parity >> stage) & 1);
    kv_parity ^= 1u << stage;
  };
  // This warp is done reading copy `copy` of stage `stage` (with kv_multicast, in both CTAs' eyes).
  auto free_copy = [&](int stage, int copy) {
    if (lane == 0) {
      const uint32_t bar = copy_free + 8 * (3 * stage + copy);
      ptx::mbarrier_arrive(bar);
      if (p.kv_multicast) ptx::mbarrier_arrive_rank(bar, rank ^ 1);
    }
  };
  // The online softmax of this warpgroup's block (scores s, from the running max m): the scale
  // of O and of the sums, P to p_tile, and m and the scale handed over (max_out, scale_out).
  // Returns whether any row of the warpgroup moved its max (O's rescale is then due).
  auto softmax = [&](const WorkItem& it, const Piece& pc, uint8_t* p_tile, float* max_out, float* scale_out,
                     float (&alpha)[2], int own_bar) {
    const bool masked = it.block * 64 + 63 > pc.seq_len - pc.q_len;
    const int key0 = it.block * 64 + 2 * (lane % 4);
    float mx[2] = {-INFINITY, -INFINITY}, m_use[2], sum[2] = {0.0f, 0.0f};
    mask_scores_row_max(s, key0, masked, pc.limit, mx);
#pragma unroll
    for (int h = 0; h < 2; ++h) alpha[h] = update_row_max(m[h], quad_max(mx[h]) * p.scale_log2, m_use[h]);
    exp_scores(s, p.scale_log2, m_use, alpha, sum, l);
    asm volatile("" : "+l"(p_tile));  // else its 32 store addresses are hoisted out of the loop, and spilled
    store_p(p_tile, s, r0, lane, 0);
    if (lane % 4 == 0) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        max_out[r0 + 8 * h] = m[h];
        scale_out[r0 + 8 * h] = alpha[h];
      }
    }
    ptx::fence_async_proxy();
    // The whole P before this warpgroup's wgmma reads it.
    return named_barrier_any(own_bar, 128, alpha[0] != 1.0f || alpha[1] != 1.0f);
  };
  // The other warpgroup's hand-over: the running max after its block and that block's scale.
  auto take_over = [&](const float* max_in, const float* scale_in, float (&alpha)[2]) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      m[h] = max_in[r0 + 8 * h];
      alpha[h] = scale_in[r0 + 8 * h];
      l[h] *= alpha[h];
    }
  };
  // Each warpgroup's loops compiled apart (W = wg): ptxas tracks wgmma registers by path, and one
  // loop holding both branches would carry warpgroup 0's P V in flight into warpgroup 1's code.
  auto run = [&](auto warpgroup) {
    constexpr int W = decltype(warpgroup)::value;
    constexpr int kOwnBar = W == 0 ? kBarOwnWg0 : kBarOwnWg1;  // an immediate in bar.sync
    using Stage0 = std::integral_constant<int, 0>;
    using Stage1 = std::integral_constant<int, 1>;
    float o[128];
    bool pending_b = false;  // warpgroup 0: a P V_B in flight, its stage not yet released
    bool p_a_used = false;   // warpgroup 0: P_A's region holds a P that warpgroup 1 may still read
    for (;;) {  // pieces: cur is the piece's first block
      const int seq = cur.seq;
      const Piece pc = start_piece(p, part, seq, r0, tile_row0);
#pragma unroll
      for (int i = 0; i < 128; ++i) o[i] = 0.0f;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        m[h] = -INFINITY;
        l[h] = 0.0f;
      }
      ptx::mbarrier_wait(bar_q, q_parity);
      q_parity ^= 1;
      bool has_next = false;
      WorkItem next = cur;
      for (;;) {  // pairs: A = cur, B = b_item when the piece has it
        WorkItem b_item = cur;
        next = cur;
        has_next = warp_uniform(advance(next, part, p, tile_row0));
        const bool has_b = warp_uniform(has_next && next.seq == seq);
        if (has_b) {
          b_item = next;
          has_next = warp_uniform(advance(next, part, p, tile_row0));
        }
        float alpha_a[2], alpha_b[2];
        if constexpr (W == 0) {
          if (pending_b) {  // the last pair's P V_B: B's copies start before this S
            ptx::wgmma_wait<0>();
            ptx::fence_registers(o);
            free_copy(1, 0);  // V_B's first half
            free_copy(1, 2);  // B's rope box, where P_B is
            pending_b = false;
          }
          issue_s(Stage0{}, cur, pc.seq_len, kOwnBar);
          ptx::wgmma_wait<0>();
          ptx::fence_registers(s);
          free_copy(0, 2);  // S_A is done with A's rope box
          if (p_a_used) {  // warpgroup 1's P V_A of the last pair is done with P_A's region
            ptx::mbarrier_wait(copy_free + 8 * 1, p_a_parity);
            p_a_parity ^= 1;
          }
          softmax(cur, pc, smem + Smem::kP, max_a, scale_a, alpha_a, kOwnBar);
          named_barrier_arrive(kBarA, kThreads);
          scale_rows(o, alpha_a);
          issue_pv(p_desc_a, v_desc, o);
          ptx::wgmma_wait<0>();
          ptx::fence_registers(o);
          free_copy(0, 0);  // V_A's first half
          p_a_used = true;
          if (has_b) {
            named_barrier_sync(kBarB, kThreads);
            wait_landed(1);
            take_over(max_b, scale_b, alpha_b);
            scale_rows(o, alpha_b);
            issue_pv(p_desc_b, v_desc + kStageStep, o);  // waited for behind the next S
            pending_b = true;
          }
        } else if (has_b) {
          issue_s(Stage1{}, b_item, pc.seq_len, kOwnBar);
          named_barrier_sync(kBarA, kThreads);
          wait_landed(0);
          take_over(max_a, scale_a, alpha_a);
          // O_R's rescale (rare: the max moves lazily) waits for S_B: ptxas serialises every
          // wgmma of the kernel when an accumulator is written between a wgmma's issue and its wait.
          if (named_barrier_any(kOwnBar, 128, alpha_a[0] != 1.0f || alpha_a[1] != 1.0f)) {
            ptx::wgmma_wait<0>();
            ptx::fence_registers(o);
            scale_rows(o, alpha_a);
          }
          issue_pv(p_desc_a, v_desc, o);  // behind S_B; runs while this warpgroup's softmax does
          ptx::wgmma_wait<1>();
          ptx::fence_registers(s);
          const bool moved = softmax(b_item, pc, smem + Smem::kKv + kTileBytes + 8 * kColBlockBytes, max_b,
                                     scale_b, alpha_b, kOwnBar);
          named_barrier_arrive(kBarB, kThreads);
          if (moved) {  // O moves: P V_A first
            ptx::wgmma_wait<0>();
            ptx::fence_registers(o);
            scale_rows(o, alpha_b);
          }
          issue_pv(p_desc_b, v_desc + kStageStep, o);
          ptx::wgmma_wait<1>();
          free_copy(0, 1);  // V_A's second half, and P_A
          ptx::wgmma_wait<0>();
          ptx::fence_registers(o);
          free_copy(1, 1);  // V_B's second half
          free_copy(1, 2);  // B's rope box, where P_B is
        } else {
          named_barrier_sync(kBarA, kThreads);
          wait_landed(0);
          take_over(max_a, scale_a, alpha_a);
          scale_rows(o, alpha_a);
          issue_pv(p_desc_a, v_desc, o);
          ptx::wgmma_wait<0>();
          ptx::fence_registers(o);
          free_copy(0, 1);
        }
        if (!has_next || next.seq != seq) break;
        cur = next;
      }
      ptx::wgmma_wait<0>();  // warpgroup 0's last P V_B
      ptx::fence_registers(o);
      if (pending_b) {
        free_copy(1, 0);
        free_copy(1, 2);
        pending_b = false;
      }
      // The piece's end: warpgroup 1 hands its row sums over (bar_sums: every S of the piece is
      // then done too, so Q may be reloaded), warpgroup 0 adds its own and hands the totals back
      // (bar_totals); each warpgroup stores its O over the total, warpgroup 0 the lse. A slot is
      // written again only after its reader has arrived on the other barrier, past its read.
      // (Through mbarriers: compute-sanitizer's racecheck reports hazards on stores that a
      // bar.arrive right after them orders, and on a bar.sync pair of both warpgroups after a
      // bar.arrive, both correct; see bench/NOTES-mla-decode.md.)
      float total[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
      }
      if constexpr (W == 1) {
        if (lane % 4 == 0) {
#pragma unroll
          for (int h = 0; h < 2; ++h) sums_b[r0 + 8 * h] = l[h];
        }
        ptx::mbarrier_arrive(bar_sums);
        ptx::mbarrier_wait(bar_totals, piece_parity);
#pragma unroll
        for (int h = 0; h < 2; ++h) total[h] = totals[r0 + 8 * h];
      } else {
        ptx::mbarrier_wait(bar_sums, piece_parity);
        if (tid == 0 && has_next) load_q_tile(p, s_q, next.seq, tile_row0, bar_q);
#pragma unroll
        for (int h = 0; h < 2; ++h) total[h] = l[h] + sums_b[r0 + 8 * h];
        if (lane % 4 == 0) {
#pragma unroll
          for (int h = 0; h < 2; ++h) totals[r0 + 8 * h] = total[h];
        }
        ptx::mbarrier_arrive(bar_totals);
      }
      piece_parity ^= 1;
      const MlaSeqSplit split = p.seq_splits[seq];
      float inv[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float lse = softmax_lse_inv(m[h], total[h], inv[h]);
        const int i = tile_row0 + r0 + 8 * h;
        if (W == 0 && lane % 4 == 0 && i < pc.rows) store_piece_lse(p, split, pc, i, lse);
      }
      store_piece(p, pc, split, r0, tile_row0, 256 * W, o, inv, lane);
      if (p.merge_in_kernel && split.num_pieces > 1) {  // merged after the last piece
        const MergeJob job = announce_split_piece(p, split, pc);
        if (tid == 0) {
          int& num_jobs = *reinterpret_cast<int*>(smem + SeesawSmem::kNumJobs);
          reinterpret_cast<MergeJob*>(smem + SeesawSmem::kMergeJobs)[num_jobs++] = job;
        }
      }
      if (!has_next) break;
      cur = next;
    }
  };
  if (wg == 0) {
    run(std::integral_constant<int, 0>{});
  } else {
    run(std::integral_constant<int, 1>{});
  }
  // Every arrival of this CTA is made (a partition holds at most two split pieces, its first and
  // last); now its merges, first sequence first. Every copy has landed and been read: the KV
  // stages hold the merge scratch. With kv_multicast, the peer's last arrivals on this CTA's
  // barriers come before its cluster arrival: neither CTA leaves before both have arrived.
  if (p.kv_multicast) ptx::cluster_arrive();
  if (p.merge_in_kernel) seesaw_merge_jobs(p, smem_raw);
  if (p.kv_multicast) ptx::cluster_wait();
}

}  // namespace mlaserve::ops::sm90
