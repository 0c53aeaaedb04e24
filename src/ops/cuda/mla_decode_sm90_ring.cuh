// MLA decode on Hopper (sm_90a), the ring kernel: the decode kernel for at most 16 query rows a
// sequence (16 heads and one token: V2-Lite, V3 under TP8) from 8 sequences up
// (use_ring_kernel in mla_decode_sm90_heuristics.h). The shared design note:
// mla_decode_sm90.cuh; the walk, copies and softmax steps it shares: mla_decode_sm90_common.cuh,
// mla_decode_sm90_narrow.cuh.
//
// Why. With 16 query rows the step only streams the cache, 72 KB a block, and a CTA's copies
// must keep enough bytes in flight to cover HBM's latency. Two 72 KB stages beside a 64-row Q
// tile (the pipeline kernel's, since removed) leave one block in flight while the other is read
// (H200: 91-93% of copy bandwidth; this kernel: 96-99%). Here every operand is sized for 16 rows, and the KV
// stages become a ring of kRingSlots column blocks ([64 keys][64 channels], 8 KB each; 2.78
// blocks):
//   - Q [16 rows x 576] (18 KB) is wgmma's B operand of S^T[64 keys x 16 rows] = K Q^T
//     (m64n16k16, A = the cache's column blocks, K-major);
//   - O is kept transposed, O^T[512 channels x 16 rows] += V^T P^T (m64n16k16: A = V^T, one
//     column block of the ring, MN-major; B = P^T [16 rows x 64 keys], 2 KB), so both GEMMs take
//     their A operand from one column block at a time and a block's 9 column blocks may sit
//     anywhere in the ring (column block c of the CTA's j-th block in slot (9 j + c) % kRingSlots);
//   - the accumulators are 8 tiles of m64n16 (64 floats a thread), whose columns are the
//     softmax's: a column's rescale and 1 / sum stay in the thread that computed them.
//
// Roles. Warpgroup 0 computes each block: waits for its 9 slots (a "full" mbarrier each), S^T,
// frees the rope slot, the softmax (narrow_softmax), P^T to shared memory, O^T += V^T P^T with
// the next block's S^T behind it (within a piece), frees the 8 latent slots (an "empty" mbarrier
// each, one arrival per warp). Warpgroup 1's first thread copies column blocks into the slots as
// they are freed, as far ahead as the ring allows, and warms L2 with each next piece's query
// rows; its other threads exit. Split sequences are merged by the combine kernel afterwards.
#pragma once

#include "ops/cuda/mla_decode_sm90_common.cuh"
#include "ops/cuda/mla_decode_sm90_narrow.cuh"

#include <type_traits>

namespace mlaserve::ops::sm90 {

inline constexpr int kRingSlots = 25;                        // the most that fit beside Q and P^T
inline constexpr int kRingRows = 16;                         // query rows of the Q tile (kRingMaxRows)
inline constexpr int kRingQColBytes = kRingRows * 128;       // a Q column block [16 rows][64 bf16]: 2 KB

// Shared-memory map of the ring kernel (byte offsets from a 1 KB-aligned base).
struct RingSmem {
  static constexpr int kQ = 0;                                        // Q [9 column blocks][16 rows][128 B]
  static constexpr int kP = kQ + 9 * kRingQColBytes;                  // P^T [16 rows][64 keys] bf16
  static constexpr int kSlots = kP + kRingQColBytes;                  // ring [kRingSlots][64 keys][128 B]
  static constexpr int kColMax = kSlots + kRingSlots * kColBlockBytes;  // [4 warps][16 columns] f32
  static constexpr int kBarriers = kColMax + 4 * 16 * 4;              // full [kRingSlots], empty [kRingSlots], Q
  static constexpr int kBytes = kBarriers + (2 * kRingSlots + 1) * 8;
};
inline constexpr int kRingSmemBytes = RingSmem::kBytes + 1024;  // + room to align the base
static_assert(kRingSmemBytes <= 227 * 1024, "over the sm_90 shared-memory limit per CTA");
static_assert(kRingRows == kRingMaxRows, "the ring kernel's Q tile holds the narrow problems' rows");

// Slot of ring position u (position 9 j + c: column block c of the CTA's j-th block), and the
// parity of that slot's phase for this use.
__device__ __forceinline__ uint32_t ring_slot(uint32_t u) { return u % kRingSlots; }
__device__ __forceinline__ uint32_t ring_phase(uint32_t u) { return (u / kRingSlots) & 1; }

// Issues S^T[64 keys x 16 rows] = K Q^T over the 576 channels of the block at ring position u0
// as one wgmma group (ring_desc: the ring's base, K-major; q_desc: the Q tile); s[i]: key
// 16 w + lane / 4 + 8 * (i / 2 % 2) of warp w, query row 8 * (i / 4) + 2 * (lane % 4) + i % 2.
__device__ __forceinline__ void issue_scores_ring(uint64_t ring_desc, uint32_t u0, uint64_t q_desc, float (&s)[8]) {
  ptx::fence_registers(s);
  ptx::wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < 36; ++ks) {
    // Both descriptors pass through an empty asm just before their wgmma: otherwise the compiler
    // computes Q's 36 (loop-invariant) ahead of the loop and keeps them in 72 registers.
    uint64_t a_step = static_cast<uint64_t>((ring_slot(u0 + ks / 4) * kColBlockBytes + (ks % 4) * 32) >> 4);
    uint64_t b_desc = q_desc;
    asm volatile("" : "+l"(a_step), "+l"(b_desc));
    wgmma_64x16<gmma::Major::K>(ring_desc + a_step,
                                b_desc + static_cast<uint64_t>(((ks / 4) * kRingQColBytes + (ks % 4) * 32) >> 4), s,
                                ks == 0 ? gmma::ScaleOut::Zero : gmma::ScaleOut::One, std::make_index_sequence<8>{});
  }
  ptx::wgmma_commit();
}

// Issues O^T[512 x 16] += V^T P^T as one wgmma group: tile t (channels 64 t ..) takes column block
// t of the block at ring position u0 as A (MN-major: 16 keys = 2 KB down the slot a k-step),
// P^T as B (32 bytes along its rows a k-step). o[t][i]: channel 64 t + 16 w + lane / 4 +
// 8 * (i / 2 % 2), query row 8 * (i / 4) + 2 * (lane % 4) + i % 2.
__device__ __forceinline__ void issue_pv_ring(uint64_t ring_v_desc, uint32_t u0, uint64_t pt_desc,
                                              float (&o)[8][8]) {
#pragma unroll
  for (int t = 0; t < 8; ++t) ptx::fence_registers(o[t]);
  ptx::wgmma_fence();
#pragma unroll
  for (int t = 0; t < 8; ++t) {
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint64_t a_step = static_cast<uint64_t>((ring_slot(u0 + t) * kColBlockBytes + kk * 16 * 128) >> 4);
      uint64_t b_desc = pt_desc;
      asm volatile("" : "+l"(a_step), "+l"(b_desc));  // as in issue_scores_ring
      wgmma_64x16<gmma::Major::MN>(ring_v_desc + a_step, b_desc + static_cast<uint64_t>((kk * 32) >> 4), o[t],
                                   gmma::ScaleOut::One, std::make_index_sequence<8>{});
    }
  }
  ptx::wgmma_commit();
}

// O^T's columns of piece pc times inv (this thread's 4 columns, 16 channels of each of the 8
// tiles) to out when the sequence is one piece, else to the piece's workspace slot.
__device__ __forceinline__ void store_piece_ring(const MlaDecodeParams& p, const Piece& pc, int seq, int warp,
                                                 int lane, const float (&o)[8][8], const float (&inv)[4]) {
  const MlaSeqSplit split = p.seq_splits[seq];
  const int ch0 = 16 * warp + lane / 4;
#pragma unroll
  for (int c = 0; c < 4; ++c) {
    const int col = narrow_col(c, lane);
    if (col >= pc.rows) continue;
    auto store = [&](auto* dst) {
#pragma unroll
      for (int t = 0; t < 8; ++t) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float v = o[t][4 * (c / 2) + 2 * h + c % 2] * inv[c];
          if constexpr (std::is_same_v<decltype(dst), float*>) {
            dst[64 * t + ch0 + 8 * h] = v;
          } else {
            dst[64 * t + ch0 + 8 * h] = __float2bfloat16_rn(v);
          }
        }
      }
    };
    if (split.num_pieces == 1) {
      store(p.out + (pc.row0 + col) * 512);
    } else {
      store(p.partial_out + piece_slot_row(p, split, pc, col) * 512);
    }
  }
}

__global__ void __launch_bounds__(kThreads, 1) mla_decode_sm90_ring_kernel(const __grid_constant__ MlaDecodeParams p) {
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = smem_base(smem_raw);
  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32;
  const int wg = __shfl_sync(0xffffffffu, tid / 128, 0);  // uniform in the warp (ptxas C7518: warp_uniform)
  const uint32_t s_q = ptx::smem_addr(smem + RingSmem::kQ), s_ring = ptx::smem_addr(smem + RingSmem::kSlots);
  // Slot i's copy landed: bar_full + 8 i; all 4 warps of warpgroup 0 done with it: bar_empty + 8 i.
  const uint32_t bar_full = ptx::smem_addr(smem + RingSmem::kBarriers);
  const uint32_t bar_empty = bar_full + 8 * kRingSlots, bar_q = bar_empty + 8 * kRingSlots;

  zero_q_tail<kRingRows>(smem + RingSmem::kQ, p.q_box_rows, tid);
  ptx::fence_async_proxy();
  if (tid == 0) {
    for (int i = 0; i < kRingSlots; ++i) {
      ptx::mbarrier_init(bar_full + 8 * i, 1);
      ptx::mbarrier_init(bar_empty + 8 * i, 4);
    }
    ptx::mbarrier_init(bar_q, 1);
    ptx::mbarrier_init_fence();
  }
  __syncthreads();

  // The partition and its first (sequence, block). The loader (warpgroup 1's first thread) walks
  // it on its own (`ahead`, ring position u_load); with early_loads its first copies (those that
  // need no freed slot) start before the wait, overlapping the kernel before, which wrote only q.
  const bool loader = tid == kThreads / 2;
  MlaPartition part;
  WorkItem cur{}, ahead{};
  bool has_work = false, more = false;
  uint32_t u_load = 0;
  // The loops below read what they need before their first copy: each TMA asm's memory clobber
  // would make the compiler reload it for every box.
  auto load_block = [&]() {  // copies block `ahead` into the next 9 slots as they are freed
    const int block_id = p.block_table[static_cast<int64_t>(ahead.seq) * p.max_blocks + ahead.block];
    const uint64_t policy = p.kv_evict_first ? ptx::l2_evict_first_policy() : 0;
#pragma unroll 1
    for (int cb = 0; cb < 9; ++cb, ++u_load) {
      const uint32_t slot = ring_slot(u_load);
      if (u_load >= kRingSlots) ptx::mbarrier_wait(bar_empty + 8 * slot, ring_phase(u_load) ^ 1);
      ptx::mbarrier_arrive_expect_bytes(bar_full + 8 * slot, kColBlockBytes);
      tma_load_kv_box(s_ring + slot * kColBlockBytes, &p.kv_map, cb, block_id * 64, bar_full + 8 * slot,
                      p.kv_evict_first, policy);
    }
    const int seq = ahead.seq;
    more = advance(ahead, part, p, 0);
    if (more && ahead.seq != seq) {  // warm L2 with the next piece's query rows (loaded after this piece's S)
      const int q_row = p.query_start[ahead.seq] * p.n_heads;
#pragma unroll 1
      for (int cb = 0; cb < 9; ++cb) ptx::tma_prefetch_2d(&p.q_map, cb * 64, q_row);
    }
  };
  auto start_walk = [&]() {
    part = p.parts[blockIdx.y];
    cur = WorkItem{part.begin_seq, part.begin_block, 0};
    has_work = settle(cur, part, p, 0);
    if (!has_work || !loader) return;
    ahead = cur;
    more = true;
    while (more && u_load + 9 <= kRingSlots) load_block();  // the copies that need no freed slot
  };
  if (p.early_loads) start_walk();
  grid_dependency_wait();  // q (and without early_loads the schedule and tables) come from earlier kernels
  grid_dependents_launch();
  if (!p.early_loads) start_walk();
  if (!has_work) return;
  if (wg == 1) {
    if (loader) {
      while (more) load_block();
    }
    return;
  }

  // Warpgroup 0.
  const int warp = tid / 32;
  const uint64_t ring_desc = ptx::gmma_desc_sw128(s_ring, 16, 1024);     // K-major: K for S^T
  const uint64_t ring_v_desc = ptx::gmma_desc_sw128(s_ring, 8192, 1024);  // MN-major: V^T for O^T
  const uint64_t q_desc = ptx::gmma_desc_sw128(s_q, 16, 1024);
  const uint64_t pt_desc = ptx::gmma_desc_sw128(ptx::smem_addr(smem + RingSmem::kP), 16, 1024);
  float* col_max = reinterpret_cast<float*>(smem + RingSmem::kColMax);
  uint32_t q_parity = 0;
  if (tid == 0) load_q_tile<kRingRows>(p, s_q, cur.seq, 0, bar_q);
  Piece pc = start_piece(p, part, cur.seq, 0, 0);
  float o[8][8], s[8], m[4], l[4];
  auto start_state = [&]() {
#pragma unroll
    for (int t = 0; t < 8; ++t) {
#pragma unroll
      for (int i = 0; i < 8; ++i) o[t][i] = 0.0f;
    }
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      m[c] = -INFINITY;
      l[c] = 0.0f;
    }
  };
  start_state();
  ptx::mbarrier_wait(bar_q, q_parity);
  q_parity ^= 1;

  // The 9 slots of the block at ring position u0 (block `block` of the piece), rows past the
  // sequence's end zeroed (they hold another step's bytes, maybe NaN, and V must be finite).
  auto wait_block = [&](uint32_t u0, int block) {
#pragma unroll 1
    for (int cb = 0; cb < 9; ++cb) ptx::mbarrier_wait(bar_full + 8 * ring_slot(u0 + cb), ring_phase(u0 + cb));
    const int valid = pc.seq_len - block * 64;
    if (warp_uniform(valid < 64)) {
      for (int i = tid; i < (64 - valid) * 72; i += 128) {
        const int chunk = i % 8, cb = i / 8 % 9, row = valid + i / 72;
        *reinterpret_cast<uint4*>(smem + RingSmem::kSlots + ring_slot(u0 + cb) * kColBlockBytes + row * 128 +
                                  chunk * 16) = make_uint4(0, 0, 0, 0);
      }
      ptx::fence_async_proxy();
      named_barrier_sync(kBarWg0, 128);
    }
  };
  wait_block(0, cur.block);
  issue_scores_ring(ring_desc, 0, q_desc, s);
  ptx::wgmma_wait<0>();
  ptx::fence_registers(s);

  // Per block: S^T is done (issued behind the last block's O^T within a piece); the softmax, P^T,
  // O^T += V^T P^T with the next block's S^T behind it.
  for (uint32_t u0 = 0;; u0 += 9) {
    if (lane == 0) ptx::mbarrier_arrive(bar_empty + 8 * ring_slot(u0 + 8));  // the rope slot is read
    WorkItem next = cur;
    const bool has_next = warp_uniform(advance(next, part, p, 0));
    const bool piece_ends = warp_uniform(!has_next || next.seq != cur.seq);
    if (piece_ends && has_next) {  // the piece's last S is done: Q may be overwritten
      named_barrier_sync(kBarWg0, 128);
      if (tid == 0) load_q_tile<kRingRows>(p, s_q, next.seq, 0, bar_q);
    }

    const bool masked = cur.block * 64 + 63 > pc.seq_len - pc.q_len;
    float alpha[4], inv[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    narrow_softmax(p, pc, cur, masked, piece_ends, tid, lane, col_max, s, m, l, alpha, inv);
    store_pt(ptx::smem_addr(smem + RingSmem::kP), s, warp, lane);
    ptx::fence_async_proxy();
    named_barrier_sync(kBarWg0, 128);

    if (__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f || alpha[2] != 1.0f || alpha[3] != 1.0f)) {
#pragma unroll
      for (int t = 0; t < 8; ++t) {
#pragma unroll
        for (int i = 0; i < 8; ++i) o[t][i] *= alpha[2 * (i / 4) + i % 2];
      }
    }
    issue_pv_ring(ring_v_desc, u0, pt_desc, o);
    if (!piece_ends) {
      wait_block(u0 + 9, next.block);
      issue_scores_ring(ring_desc, u0 + 9, q_desc, s);
      ptx::wgmma_wait<1>();
    } else {
      ptx::wgmma_wait<0>();
    }
#pragma unroll
    for (int t = 0; t < 8; ++t) ptx::fence_registers(o[t]);
    if (lane == 0) {
#pragma unroll
      for (int cb = 0; cb < 8; ++cb) ptx::mbarrier_arrive(bar_empty + 8 * ring_slot(u0 + cb));
    }

    if (piece_ends) {
      store_piece_ring(p, pc, cur.seq, warp, lane, o, inv);
      if (!has_next) break;
      pc = start_piece(p, part, next.seq, 0, 0);
      start_state();
      ptx::mbarrier_wait(bar_q, q_parity);
      q_parity ^= 1;
      wait_block(u0 + 9, next.block);
      issue_scores_ring(ring_desc, u0 + 9, q_desc, s);
    }
    ptx::wgmma_wait<0>();
    ptx::fence_registers(s);
    cur = next;
  }
}

}  // namespace mlaserve::ops::sm90
