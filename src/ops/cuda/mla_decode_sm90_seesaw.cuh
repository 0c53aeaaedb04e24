// MLA decode on Hopper (sm_90a), the seesaw kernel (FlashMLA's schedule, written from its
// public write-up): the two warpgroups take a piece's blocks in pairs (A, B) and each computes the
// scores and softmax of one of them, so that one warpgroup's softmax runs while the other's GEMMs
// keep the tensor cores busy. In the pipeline kernel's place for 128 heads in large batches
// (use_seesaw_kernel). The shared design note: mla_decode_sm90.cuh; the pieces the decode kernels
// share: mla_decode_sm90_common.cuh.
//
// Per pair (A in KV stage 0, owned by warpgroup 0; B in stage 1, owned by warpgroup 1; a piece
// with an odd number of blocks ends on a pair without B):
//   wg 0: S_A = Q K_A^T; softmax from the running max m (after the last B) -> m_A, scale a_A,
//         P_A (bf16, in Smem's P region); hands m_A, a_A and P_A over (barrier A);
//         O_L = O_L a_A + P_A V_A[:, 0:256]; waits for B's hand-over (barrier B);
//         O_L = O_L a_B + P_B V_B[:, 0:256], with the next pair's S_A issued behind it.
//   wg 1: S_B = Q K_B^T; waits for A's hand-over; O_R = O_R a_A + P_A V_A[:, 256:512] (issued
//         before its own softmax, which then overlaps it); softmax from m_A -> m_B, a_B, P_B
//         (over B's rope box, which S_B no longer needs); hands them over;
//         O_R = O_R a_B + P_B V_B[:, 256:512].
// The running max moves lazily (update_row_max): a_A and a_B are 1 past a piece's first blocks,
// so the rescale between a warpgroup's two P V products (which has to wait for the first) is
// rare. Each warpgroup keeps the row sums of its own blocks, rescaled by every a; the two are
// added at the piece's end.
// The copies: a stage's 9 boxes (64 channels) come in three copies (V's halves, four boxes each,
// and the rope box; seesaw_copy), each with its own barrier; S visits the boxes in the order they
// are freed (seesaw_box), and each copy is started again by the warpgroup that is last to read
// it: A's rope box after S_A, V_A's first half after wg 0's P V, its second half after wg 1's;
// V_B's second half after wg 1's P V, the rest of B after both. A block's stage is its position
// in its piece, mod 2.
// ptxas serialises every wgmma of the kernel (C7514 / C7515) when an accumulator is read or
// written while a wgmma of the same pipeline stage may be pending, or when it cannot tell which
// groups a wait retires where paths meet: each warpgroup's loops are compiled apart, the waits sit
// on straight paths, and O is rescaled only after a wait. Check -Xptxas -v for C75xx after edits.
#pragma once

#include "ops/cuda/mla_decode_sm90_common.cuh"
#include "ops/cuda/mla_decode_sm90_pipeline.cuh"  // issue_score_step, store_piece

#include <type_traits>

namespace mlaserve::ops::sm90 {

// The seesaw's shared memory: Smem's Q tile, KV stages and P region (P_A; P_B sits over B's rope
// box) and its barriers (the Q tile's, each stage's "empty"); in place of Smem's row arrays, the
// hand-overs between the warpgroups: row max and scale of A (warpgroup 0 writes) and of B
// (warpgroup 1), [64] f32 each; after Smem's barriers the row sums at a piece's end (warpgroup 1's,
// and the totals that warpgroup 0 hands back) and the boxes' barriers.
struct SeesawSmem {
  static constexpr int kMaxA = Smem::kRowMax;
  static constexpr int kScaleA = kMaxA + 64 * 4;
  static constexpr int kMaxB = kScaleA + 64 * 4;
  static constexpr int kScaleB = kMaxB + 64 * 4;
  static_assert(kScaleB + 64 * 4 <= Smem::kBarriers, "the hand-overs fit Smem's row arrays");
  static constexpr int kSums = Smem::kBarriers + 5 * 8;  // f32 [2][64]: the total row sums, warpgroup 1's
  static constexpr int kBoxFull = kSums + 2 * 64 * 4;    // mbarriers [2 stages][3 copies]: the copy landed
  static constexpr int kPieceEnd = kBoxFull + 6 * 8;     // mbarriers: warpgroup 1's row sums in, the totals in
  static constexpr int kBytes = kPieceEnd + 2 * 8;
};
inline constexpr int kSeesawSmemBytes = SeesawSmem::kBytes + 1024;  // + room to align the base
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

// Moves `it` (settled) to the next block of the walk whose stage is `stage`; false when none.
__device__ __forceinline__ bool advance_to_stage(WorkItem& it, int stage, const MlaPartition& part,
                                                 const MlaDecodeParams& p, int tile_row0) {
  do {
    if (!advance(it, part, p, tile_row0)) return false;
  } while (seesaw_stage(it, part) != stage);
  return true;
}

// A stage's boxes (column blocks) come in three copies: V's first half (boxes 0-3), its second
// half (4-7), each one 3-D copy of four boxes (kv_group_map), and the rope box (8). One TMA copy costs
// its issuing thread ~94 cycles on an idle H200 and several hundred under load, whatever its size
// (tools/tma_issue_probe.cu), and the copies are issued by the warps that compute.
__device__ __forceinline__ constexpr int seesaw_copy(int cb) { return cb / 4; }

// Starts copy `copy` (seesaw_copy) of cache block block_id into stage `stage`, completing on its
// barrier box_full + 8 * (3 * stage + copy): S starts on the first copy to land, and each is
// started as soon as the warpgroups are done with its old contents.
__device__ __forceinline__ void load_kv_copy(const MlaDecodeParams& p, uint32_t s_kv, int block_id, int stage,
                                             uint32_t box_full, int copy) {
  const uint64_t policy = p.kv_evict_first ? ptx::l2_evict_first_policy() : 0;
  const uint32_t bar = box_full + 8 * (3 * stage + copy);
  const uint32_t dst = s_kv + stage * kTileBytes + 4 * copy * kColBlockBytes;
  if (copy == 2) {
    ptx::mbarrier_arrive_expect_bytes(bar, kColBlockBytes);
    tma_load_kv_box(dst, &p.kv_map, 8, block_id * 64, bar, p.kv_evict_first, policy);
    return;
  }
  ptx::mbarrier_arrive_expect_bytes(bar, 4 * kColBlockBytes);
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

// issue_scores with each column block's 4 k-steps issued once that box's copy has landed, in
// seesaw_box order (bars: the stage's 3 copy barriers, completing with this parity).
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

__global__ void __launch_bounds__(kThreads, 1)
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
  const int wg = __shfl_sync(0xffffffffu, tid / 128, 0);  // uniform in the warp (see the pipeline kernel)
  const int r0 = (tid / 32 % 4) * 16 + lane / 4;           // this thread's accumulator rows: r0, r0 + 8
  const int tile_row0 = static_cast<int>(blockIdx.x) * kTileRows;
  const uint32_t s_q = ptx::smem_addr(smem + Smem::kQ), s_kv = ptx::smem_addr(smem + Smem::kKv);
  // Barriers: the Q tile's copy (bar_q); stage s's P V products done by all 8 warps (bar_empty +
  // 8 s: stage 0's tells warpgroup 0 that P_A's region is free, stage 1's that B's rope box is);
  // each copy landed (box_full); at a piece's end, warpgroup 1's row sums and the totals written by
  // all 128 threads of the warpgroup that hands them over (bar_sums, bar_totals).
  const uint32_t bar_q = ptx::smem_addr(smem + Smem::kBarriers) + 16, bar_empty = bar_q + 8;
  const uint32_t box_full = ptx::smem_addr(smem + SeesawSmem::kBoxFull);
  const uint32_t bar_sums = ptx::smem_addr(smem + SeesawSmem::kPieceEnd), bar_totals = bar_sums + 8;

  zero_q_tail(smem + Smem::kQ, p.q_box_rows, tid);
  ptx::fence_async_proxy();
  if (tid == 0) {
    for (int i = 0; i < 6; ++i) ptx::mbarrier_init(box_full + 8 * i, 1);
    for (int i = 0; i < 2; ++i) ptx::mbarrier_init(bar_sums + 8 * i, 128);
    ptx::mbarrier_init(bar_q, 1);
    ptx::mbarrier_init(bar_empty, kThreads / 32);
    ptx::mbarrier_init(bar_empty + 8, kThreads / 32);
    ptx::mbarrier_init_fence();
  }
  __syncthreads();

  // The walk. Thread 0 copies the first block of each stage (with early_loads before the wait,
  // as the pipeline kernel does); after that, each of a stage's three copies is started by the
  // warpgroup that is last to read it (seesaw_box): threads 0 and 128 each follow both
  // stages' next blocks (ahead[s], their cache blocks ahead_id[s], read a block ahead).
  const bool loader = tid % 128 == 0;
  MlaPartition part;
  WorkItem cur, ahead[2];
  int ahead_id[2] = {0, 0};
  bool has_work = false, more[2] = {false, false};
  auto step_ahead = [&](int stage) {
    more[stage] = advance_to_stage(ahead[stage], stage, part, p, tile_row0);
    if (more[stage]) ahead_id[stage] = kv_block_id(p, ahead[stage]);
  };
  auto start_walk = [&]() {
    part = p.parts[blockIdx.y];
    cur = WorkItem{part.begin_seq, part.begin_block, 0};
    has_work = settle(cur, part, p, tile_row0);
    if (!has_work || !loader) return;
    ahead[0] = cur;
    ahead[1] = cur;
    const bool has_b = advance_to_stage(ahead[1], 1, part, p, tile_row0);
    if (tid == 0) {
      constexpr int kOrder[2][3] = {{2, 0, 1}, {1, 0, 2}};  // as S visits them (seesaw_box)
      for (const int c : kOrder[0]) load_kv_copy(p, s_kv, kv_block_id(p, cur), 0, box_full, c);
      if (has_b) {
        for (const int c : kOrder[1]) load_kv_copy(p, s_kv, kv_block_id(p, ahead[1]), 1, box_full, c);
      }
    }
    step_ahead(0);
    if (has_b) step_ahead(1);
  };
  // This thread's share of the next block of `stage`: copy `copy` (seesaw_copy); `last`: its last
  // share of that block (the walk moves on).
  auto refill = [&](int stage, int copy, bool last) {
    if (loader && more[stage]) {
      load_kv_copy(p, s_kv, ahead_id[stage], stage, box_full, copy);
      if (last) step_ahead(stage);
    }
  };
  if (p.early_loads) start_walk();
  grid_dependency_wait();
  grid_dependents_launch();
  if (!p.early_loads) start_walk();
  if (!has_work) return;
  if (tid == 0) load_q_tile(p, s_q, cur.seq, tile_row0, bar_q);

  const uint64_t q_desc = ptx::gmma_desc_sw128(s_q, 16, 1024);
  const uint64_t k_desc = ptx::gmma_desc_sw128(s_kv, 16, 1024);
  const uint64_t v_desc = ptx::gmma_desc_sw128(s_kv + wg * 4 * kColBlockBytes, 8192, 1024);
  // P_A in Smem's P region, P_B over B's rope box.
  const uint64_t p_desc_a = ptx::gmma_desc_sw128(ptx::smem_addr(smem + Smem::kP), 16, 1024);
  const uint64_t p_desc_b = ptx::gmma_desc_sw128(s_kv + kTileBytes + 8 * kColBlockBytes, 16, 1024);

  uint32_t kv_parity = 0, empty_parity = 0, q_parity = 0, piece_parity = 0;
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
  auto arrive_empty = [&](int stage) {
    if (lane == 0) ptx::mbarrier_arrive(bar_empty + 8 * stage);
  };
  auto wait_empty = [&](int stage) {
    ptx::mbarrier_wait(bar_empty + 8 * stage, (empty_parity >> stage) & 1);
    empty_parity ^= 1u << stage;
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
  // Warpgroup 0, both P V_B done: B's rope box and V's first half are free for the next B.
  auto release_b = [&]() {
    arrive_empty(1);
    if (loader) wait_empty(1);
    refill(1, 0, false);
    refill(1, 2, true);
    __syncwarp();
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
          issue_s(Stage0{}, cur, pc.seq_len, kOwnBar);
          ptx::wgmma_wait<0>();  // and the last pair's P V_B, issued ahead of this S
          ptx::fence_registers(s);
          ptx::fence_registers(o);
          if (pending_b) {
            release_b();
            pending_b = false;
          }
          refill(0, 2, false);  // S_A is done with A's rope box
          if (p_a_used) wait_empty(0);  // warpgroup 1's P V_A of the last pair is done with P_A's region
          softmax(cur, pc, smem + Smem::kP, max_a, scale_a, alpha_a, kOwnBar);
          named_barrier_arrive(kBarA, kThreads);
          scale_rows(o, alpha_a);
          issue_pv(p_desc_a, v_desc, o);
          ptx::wgmma_wait<0>();
          ptx::fence_registers(o);
          arrive_empty(0);
          p_a_used = true;
          refill(0, 0, true);  // V_A's first half, warpgroup 0's own
          __syncwarp();
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
          arrive_empty(0);
          refill(0, 1, true);  // V_A's second half, warpgroup 1's own
          __syncwarp();
          ptx::wgmma_wait<0>();
          ptx::fence_registers(o);
          arrive_empty(1);
          refill(1, 1, true);  // V_B's second half
          __syncwarp();
        } else {
          named_barrier_sync(kBarA, kThreads);
          wait_landed(0);
          take_over(max_a, scale_a, alpha_a);
          scale_rows(o, alpha_a);
          issue_pv(p_desc_a, v_desc, o);
          ptx::wgmma_wait<0>();
          ptx::fence_registers(o);
          arrive_empty(0);
          refill(0, 1, true);
          __syncwarp();
        }
        if (!has_next || next.seq != seq) break;
        cur = next;
      }
      ptx::wgmma_wait<0>();  // warpgroup 0's last P V_B
      ptx::fence_registers(o);
      if (pending_b) {
        release_b();
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
      store_piece(p, pc, seq, r0, tile_row0, 256 * W + 2 * (lane % 4), o, inv);
      if (!has_next) break;
      cur = next;
    }
  };
  if (wg == 0) {
    run(std::integral_constant<int, 0>{});
  } else {
    run(std::integral_constant<int, 1>{});
  }
}

}  // namespace mlaserve::ops::sm90
