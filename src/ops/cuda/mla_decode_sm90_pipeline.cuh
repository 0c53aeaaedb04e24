// MLA decode on Hopper (sm_90a), the pipeline kernel: the two warpgroups form a pipeline. The
// shared design note: mla_decode_sm90.cuh; the pieces both decode kernels use:
// mla_decode_sm90_common.cuh; which kernel a step uses: use_pipeline_kernel in
// mla_decode_sm90_heuristics.h (this one from 8 sequences up, for more than 16 query rows a
// sequence; at most 16 take the ring kernel, mla_decode_sm90_ring.cuh).
//
// Per 64-token block:
//   warpgroup 0 waits for the block's copy, zeroes rows past the sequence's end, computes
//   S[64 x 64] = Q K^T (36 wgmma m64n64k16), scale, causal mask, the online softmax (it alone
//   owns the row max and sum), and writes P (bf16) and the rows' O rescale to shared memory;
//   named barriers hand them over (P-full: warpgroup 0 arrives, 1 waits; P-free: the reverse);
//   each warpgroup then does O[64 x 256] += P V on its half of the 512 channels (4 wgmma
//   m64n256k16). Warpgroup 0 issues the next block's S behind its P V when that block has
//   landed; when it has not (HBM-bound), it releases this stage first, so that two copies are in
//   flight. Warpgroup 1's first thread issues the KV copies into the stage that all 8 warps have
//   released (per-stage "empty" mbarriers, 8 arrivals).
// ptxas serialises every wgmma of a kernel (info C7518 / C7520, not a warning) when it inserts a
// wgmma wait or fence in a path it cannot prove warp-uniform: every branch condition around the
// wgmma code below passes through warp_uniform, and the QK loop is unrolled with each k-step's
// descriptor offset laundered through an empty asm. Check -Xptxas -v for C75xx after edits here.
#pragma once

#include "ops/cuda/mla_decode_sm90_common.cuh"

namespace mlaserve::ops::sm90 {

// True when the mbarrier's phase with this parity has completed (does not wait).
__device__ __forceinline__ bool mbarrier_test(uint32_t bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "mbarrier.test_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      "selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
}

// A flag in shared memory that one thread writes and others read after a barrier; volatile, in
// the shared state space (through a generic pointer it compiles to system-scope ST/LD.STRONG).
__device__ __forceinline__ void store_shared_flag(uint32_t addr, int v) {
  asm volatile("st.volatile.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
__device__ __forceinline__ int load_shared_flag(uint32_t addr) {
  int v;
  asm volatile("ld.volatile.shared.u32 %0, [%1];\n" : "=r"(v) : "r"(addr) : "memory");
  return v;
}

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

// Issues a block's scores (issue_score_step's 36 k-steps) as one wgmma group; the caller waits
// for it.
__device__ __forceinline__ void issue_scores(uint64_t q_desc, uint64_t k_desc, float (&s)[32]) {
  ptx::fence_registers(s);
  ptx::wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < 36; ++ks) issue_score_step(q_desc, k_desc, s, ks / 4, ks % 4, ks == 0);
  ptx::wgmma_commit();
}

// Writes one warpgroup's 256 output channels (from col0) of this thread's rows r0 and r0 + 8 at
// a piece's end: to out when the sequence is one piece, else to the piece's workspace slot.
__device__ __forceinline__ void store_piece(const MlaDecodeParams& p, const Piece& pc, int seq, int r0,
                                            int tile_row0, int col0, const float (&o)[128], const float (&inv)[2]) {
  const MlaSeqSplit split = p.seq_splits[seq];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int i = tile_row0 + r0 + 8 * h;
    if (i >= pc.rows) continue;
    if (split.num_pieces == 1) {
      store_o_row(p.out + (pc.row0 + i) * 512 + col0, o, h, inv[h]);
    } else {
      store_o_row(p.partial_out + piece_slot_row(p, split, pc, i) * 512 + col0, o, h, inv[h]);
    }
  }
}

__global__ void __launch_bounds__(kThreads, 1)
    mla_decode_sm90_pipeline_kernel(const __grid_constant__ MlaDecodeParams p) {
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = smem_base(smem_raw);
  float* row_scale = reinterpret_cast<float*>(smem + Smem::kRowScale);  // [64]
  float* row_inv = reinterpret_cast<float*>(smem + Smem::kRowInv);      // [64]
  const uint32_t next_ready = ptx::smem_addr(smem + Smem::kNextReady);  // i32 flag

  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32;
  // The warpgroup index through a shuffle: the compiler then knows it is uniform in a warp, and
  // does not serialise the wgmmas of the two branches below (ptxas C7518).
  const int wg = __shfl_sync(0xffffffffu, tid / 128, 0);
  const int r0 = (tid / 32 % 4) * 16 + lane / 4;  // this thread's accumulator rows: r0, r0 + 8
  const int tile_row0 = static_cast<int>(blockIdx.x) * kTileRows;
  const uint32_t s_q = ptx::smem_addr(smem + Smem::kQ), s_kv = ptx::smem_addr(smem + Smem::kKv);
  const uint64_t p_desc = ptx::gmma_desc_sw128(ptx::smem_addr(smem + Smem::kP), 16, 1024);
  // KV stage i: full (the copy landed) at bar_full + 8 i, empty (all 8 warps done with it) at
  // bar_empty + 8 i; the Q tile's copy at bar_q.
  const uint32_t bar_full = ptx::smem_addr(smem + Smem::kBarriers), bar_q = bar_full + 16, bar_empty = bar_full + 24;

  zero_q_tail(smem + Smem::kQ, p.q_box_rows, tid);
  ptx::fence_async_proxy();
  if (tid == 0) {
    ptx::mbarrier_init(bar_full, 1);
    ptx::mbarrier_init(bar_full + 8, 1);
    ptx::mbarrier_init(bar_q, 1);
    ptx::mbarrier_init(bar_empty, kThreads / 32);
    ptx::mbarrier_init(bar_empty + 8, kThreads / 32);
    ptx::mbarrier_init_fence();
  }
  __syncthreads();

  // The partition, its first (sequence, block), and the loader's copies of the first two blocks
  // (warpgroup 1's first thread; `ahead` is its next block to copy). With early_loads this runs
  // before the wait, overlapping the kernel before, which wrote only q (MlaDecodeArgs).
  const bool loader = tid == kThreads / 2;
  MlaPartition part;
  WorkItem cur, ahead;
  bool has_work = false, more = false;
  auto start_walk = [&]() {
    part = p.parts[blockIdx.y];
    cur = WorkItem{part.begin_seq, part.begin_block, 0};
    has_work = settle(cur, part, p, tile_row0);
    if (!has_work || !loader) return;
    ahead = cur;
    load_kv_block(p, s_kv, ahead, 0, bar_full);
    more = advance(ahead, part, p, tile_row0);
    if (more) {
      load_kv_block(p, s_kv, ahead, 1, bar_full);
      more = advance(ahead, part, p, tile_row0);
    }
  };
  if (p.early_loads) start_walk();
  grid_dependency_wait();  // q (and without early_loads the schedule and tables) come from earlier kernels
  grid_dependents_launch();
  if (!p.early_loads) start_walk();
  if (!has_work) return;
  Piece pc = start_piece(p, part, cur.seq, r0, tile_row0);
  float o[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) o[i] = 0.0f;

  if (wg == 0) {
    // Warpgroup 0: S = Q K^T of every block, the online softmax, P and the row scales to shared
    // memory, O[:, 0:256] += P V; S of the next block is issued behind this block's P V.
    const uint64_t q_desc = ptx::gmma_desc_sw128(s_q, 16, 1024);
    const uint64_t k_desc = ptx::gmma_desc_sw128(s_kv, 16, 1024);
    const uint64_t v_desc = ptx::gmma_desc_sw128(s_kv, 8192, 1024);
    auto load_q = [&](int seq) { load_q_tile(p, s_q, seq, tile_row0, bar_q); };
    uint32_t kv_parity = 0, q_parity = 0;  // parity of each barrier's next completion (bit per stage)
    auto wait_block = [&](const WorkItem& it, int seq_len, int stage) {
      ptx::mbarrier_wait(bar_full + 8 * stage, (kv_parity >> stage) & 1);
      kv_parity ^= 1u << stage;
      const int valid = seq_len - it.block * 64;
      if (valid < 64) {
        zero_tail_rows(smem + Smem::kKv + stage * kTileBytes, valid, tid, 128);
        ptx::fence_async_proxy();
        named_barrier_sync(kBarWg0, 128);
      }
    };
    if (tid == 0) load_q(cur.seq);
    // The softmax state of this thread's 2 rows, and its scores.
    float s[32], m[2], l[2];
    auto start_state = [&]() {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        m[h] = -INFINITY;
        l[h] = 0.0f;
      }
    };
    auto issue_s = [&](int stage) { issue_scores(q_desc, k_desc + stage * kStageStep, s); };
    start_state();
    ptx::mbarrier_wait(bar_q, q_parity);
    q_parity ^= 1;
    wait_block(cur, pc.seq_len, 0);
    issue_s(0);
    ptx::wgmma_wait<0>();
    ptx::fence_registers(s);

    WorkItem next = cur;
    bool has_next = warp_uniform(advance(next, part, p, tile_row0));
    bool piece_ends = warp_uniform(!has_next || next.seq != cur.seq);
    auto reload_q = [&]() {  // the last S of this piece is done: Q may be overwritten
      named_barrier_sync(kBarWg0, 128);
      if (tid == 0) load_q(next.seq);
    };
    if (piece_ends && has_next) reload_q();

    for (int stage = 0, first = 1;; stage ^= 1, first = 0) {
      // Scores masked (bottom-right causal), and the online softmax in log2 units; P, the row
      // scales and (at a piece's end) the rows' 1 / sum and lse. alpha, inv: this thread's P V
      // rows r0, r0 + 8.
      const bool masked = cur.block * 64 + 63 > pc.seq_len - pc.q_len;
      float alpha[2], inv[2] = {0.0f, 0.0f};
      // s[i]: row r0 + 8 * (i / 2 % 2), key key0 + 8 * (i / 4) + i % 2.
      const int key0 = cur.block * 64 + 2 * (lane % 4);
      float mx[2] = {-INFINITY, -INFINITY};
      mask_scores_row_max(s, key0, masked, pc.limit, mx);
      float m_use[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
      for (int h = 0; h < 2; ++h) alpha[h] = update_row_max(m[h], quad_max(mx[h]) * p.scale_log2, m_use[h]);
      exp_scores(s, p.scale_log2, m_use, alpha, sum, l);
      if (piece_ends) {  // row sums, lse (natural log) of this piece
        const MlaSeqSplit split = p.seq_splits[cur.seq];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          float total = l[h] + __shfl_xor_sync(0xffffffffu, l[h], 1);
          total += __shfl_xor_sync(0xffffffffu, total, 2);
          const float lse = softmax_lse_inv(m[h], total, inv[h]);
          const int i = tile_row0 + r0 + 8 * h;
          if (lane % 4 == 0 && i < pc.rows) store_piece_lse(p, split, pc, i, lse);
        }
      }

      // P (bf16, all 64 keys) and the row scales to shared memory once warpgroup 1 is done with
      // the last ones.
      if (!first) named_barrier_sync(kBarPFree, kThreads);
      store_p(smem + Smem::kP, s, r0, lane, 0);
      if (lane % 4 == 0) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          row_scale[r0 + 8 * h] = alpha[h];
          row_inv[r0 + 8 * h] = inv[h];
        }
      }
      // Whether the next block has landed, decided by thread 0 for the warpgroup (wgmma needs one
      // path for all its warps): if so, its S runs behind this P V; if not (HBM-bound), this
      // stage is released first, so that the copy into it is in flight while the next one lands.
      if (tid == 0) {
        store_shared_flag(next_ready,
                          !piece_ends && mbarrier_test(bar_full + 8 * (stage ^ 1), (kv_parity >> (stage ^ 1)) & 1));
      }
      ptx::fence_async_proxy();
      named_barrier_sync(kBarWg0, 128);
      named_barrier_arrive(kBarPFull, kThreads);
      const bool overlap = warp_uniform(load_shared_flag(next_ready) != 0);

      scale_rows(o, alpha);
      issue_pv(p_desc, v_desc + stage * kStageStep, o);
      if (overlap) {
        wait_block(next, pc.seq_len, stage ^ 1);
        issue_s(stage ^ 1);
        ptx::wgmma_wait<1>();
      } else {
        ptx::wgmma_wait<0>();
      }
      ptx::fence_registers(o);
      if (lane == 0) ptx::mbarrier_arrive(bar_empty + 8 * stage);
      if (!piece_ends && !overlap) {
        wait_block(next, pc.seq_len, stage ^ 1);
        issue_s(stage ^ 1);
      }
      if (piece_ends) {  // (S of the next piece waits: O, S and the stores do not fit the registers together)
        store_piece(p, pc, cur.seq, r0, tile_row0, 2 * (lane % 4), o, inv);
        if (!has_next) break;
#pragma unroll
        for (int i = 0; i < 128; ++i) o[i] = 0.0f;
        pc = start_piece(p, part, next.seq, r0, tile_row0);
        start_state();
        ptx::mbarrier_wait(bar_q, q_parity);
        q_parity ^= 1;
        wait_block(next, pc.seq_len, stage ^ 1);
        issue_s(stage ^ 1);
      }
      ptx::wgmma_wait<0>();
      ptx::fence_registers(s);
      cur = next;
      has_next = warp_uniform(advance(next, part, p, tile_row0));
      piece_ends = warp_uniform(!has_next || next.seq != cur.seq);
      if (piece_ends && has_next) reload_q();
    }
  } else {
    // Warpgroup 1: O[:, 256:512] += P V with warpgroup 0's P and row scales. Its first thread
    // copies the KV blocks: two ahead at the start (start_walk), then each block into the stage
    // that the block two before it has left (all 8 warps arrived on that stage's empty barrier).
    const uint64_t v_desc = ptx::gmma_desc_sw128(s_kv + 4 * kColBlockBytes, 8192, 1024);
    auto load_kv = [&](const WorkItem& it, int stage) { load_kv_block(p, s_kv, it, stage, bar_full); };
    __syncwarp();
    uint32_t kv_parity = 0, empty_parity = 0;
    for (int stage = 0;; stage ^= 1) {
      WorkItem next = cur;
      const bool has_next = warp_uniform(advance(next, part, p, tile_row0));
      const bool piece_ends = warp_uniform(!has_next || next.seq != cur.seq);
      named_barrier_sync(kBarPFull, kThreads);
      ptx::mbarrier_wait(bar_full + 8 * stage, (kv_parity >> stage) & 1);  // complete: orders the copy's bytes
      kv_parity ^= 1u << stage;
      // The rows' scales, and at a piece's end their 1 / sum: read before P-free lets warpgroup 0
      // write the next block's.
      float alpha[2], inv[2] = {0.0f, 0.0f};
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        alpha[h] = row_scale[r0 + 8 * h];
        if (piece_ends) inv[h] = row_inv[r0 + 8 * h];
      }
      scale_rows(o, alpha);
      issue_pv(p_desc, v_desc + stage * kStageStep, o);
      ptx::wgmma_wait<0>();
      ptx::fence_registers(o);
      if (has_next) named_barrier_arrive(kBarPFree, kThreads);
      if (lane == 0) ptx::mbarrier_arrive(bar_empty + 8 * stage);
      if (loader && more) {
        ptx::mbarrier_wait(bar_empty + 8 * stage, (empty_parity >> stage) & 1);
        empty_parity ^= 1u << stage;
        load_kv(ahead, stage);
        more = advance(ahead, part, p, tile_row0);
      }
      __syncwarp();
      if (piece_ends) {
        store_piece(p, pc, cur.seq, r0, tile_row0, 256 + 2 * (lane % 4), o, inv);
        if (!has_next) break;
#pragma unroll
        for (int i = 0; i < 128; ++i) o[i] = 0.0f;
        pc = start_piece(p, part, next.seq, r0, tile_row0);
      }
      cur = next;
    }
  }
}

}  // namespace mlaserve::ops::sm90
