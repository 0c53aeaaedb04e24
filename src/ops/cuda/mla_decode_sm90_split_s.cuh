// MLA decode on Hopper (sm_90a), the split-S kernel: both warpgroups in step, each computing S
// over half of a block's keys. The shared design note: mla_decode_sm90.cuh; the pieces the
// decode kernels share: mla_decode_sm90_common.cuh; which kernel a step uses: use_partitioned_kernels
// in mla_decode_sm90_heuristics.h (this one for small batches of at most 16 query rows a
// sequence, where a CTA reads about one block and the shortest chain per block wins).
//
// Per 64-token block (one pipeline stage):
//   barrier (everyone is done with the previous stage); thread 0 starts the next block's copy
//   into the other stage (one block in flight while this one computes: 72 KB per SM, ~2x what
//   HBM latency times bandwidth needs); wait for this stage's mbarrier; rows past the
//   sequence's end are zeroed (their bytes are another step's data, maybe NaN);
//   S[64 x 32] = Q K^T over this warpgroup's half of the keys (36 wgmma m64n32k16);
//   scale, causal mask (bottom-right), row max -> exchanged through shared memory; barrier;
//   online softmax in fp32 (exp2), P rounded to bf16 into shared memory; barrier;
//   O[64 x 256] += P V over all 64 keys, this warpgroup's half of the 512 output channels
//   (4 wgmma m64n256k16; O is 128 fp32 registers per thread).
// O is rescaled only when a row maximum of the warp moved, and a maximum moves lazily
// (update_row_max). At the end of a piece the two warpgroups add their row sums and write
// out/lse (bf16) or the partial (fp32). The next sequence's Q tile loads while the last block's
// P V runs.
//
// Split sequences are merged here, not by the combine kernel (mla_decode_sm90_merge.cuh): a
// CTA that stored a split piece arrives on the (sequence, tile) counter at once, and after its
// last block waits for the sequence's other pieces and merges its share of the tile's rows. A
// partition's split pieces are its first and last sequences' (those in between lie whole inside
// it), so a CTA holds at most two merge jobs.
#pragma once

#include "ops/cuda/mla_decode_sm90_common.cuh"
#include "ops/cuda/mla_decode_sm90_merge.cuh"

namespace mlaserve::ops::sm90 {

template <size_t... I>
__device__ __forceinline__ void wgmma_64x32(uint64_t a, uint64_t b, float (&d)[16], gmma::ScaleOut scale,
                                            std::index_sequence<I...>) {
  gmma::MMA_64x32x16_F32BF16BF16_SS<gmma::Major::K, gmma::Major::K>::fma(a, b, d[I]..., scale);
}
// S[64 x 32] = Q[64 x 576] K[32 x 576]^T. The descriptors point at channel 0; k-step ks moves
// 32 bytes inside a 128-byte swizzle row, and to the next column block every 4 steps.
__device__ __forceinline__ void gemm_qk(uint64_t q_desc, uint64_t k_desc, float (&s)[16]) {
  ptx::fence_registers(s);
  ptx::wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < 36; ++ks) {
    const uint64_t step = static_cast<uint64_t>(((ks / 4) * kColBlockBytes + (ks % 4) * 32) >> 4);
    wgmma_64x32(q_desc + step, k_desc + step, s, ks == 0 ? gmma::ScaleOut::Zero : gmma::ScaleOut::One,
                std::make_index_sequence<16>{});
  }
  ptx::wgmma_commit();
  ptx::wgmma_wait<0>();
  ptx::fence_registers(s);
}

// ---- the kernel ------------------------------------------------------------------------

__global__ void __launch_bounds__(kThreads, 1)
    mla_decode_sm90_split_s_kernel(const __grid_constant__ MlaDecodeParams p) {
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = smem_base(smem_raw);
  float* row_max = reinterpret_cast<float*>(smem + Smem::kRowMax);  // [2][64]
  float* row_sum = reinterpret_cast<float*>(smem + Smem::kRowSum);  // [2][64]
  uint8_t* p_tile = smem + Smem::kP;
  MergeJob* jobs = reinterpret_cast<MergeJob*>(smem + Smem::kMergeJobs);  // [2]

  const int tid = static_cast<int>(threadIdx.x), wg = tid / 128, lane = tid % 32;
  const int r0 = (tid / 32 % 4) * 16 + lane / 4;  // this thread's accumulator rows: r0, r0 + 8
  const int tile_row0 = static_cast<int>(blockIdx.x) * kTileRows;
  const uint32_t s_q = ptx::smem_addr(smem + Smem::kQ), s_kv = ptx::smem_addr(smem + Smem::kKv);
  const uint32_t bar_kv = ptx::smem_addr(smem + Smem::kBarriers), bar_q = bar_kv + 16;  // stage i: bar_kv + 8 i

  // Before the wait, overlapping the end of the kernel before this one: the L2 prefetch of the
  // metadata the first loads read, and the set-up of shared memory.
  if (tid < 32) prefetch_step_metadata(p, tid);
  zero_q_tail(smem + Smem::kQ, p.q_box_rows, tid);
  ptx::fence_async_proxy();
  if (tid == 0) {
    ptx::mbarrier_init(bar_kv, 1);
    ptx::mbarrier_init(bar_kv + 8, 1);
    ptx::mbarrier_init(bar_q, 1);
    ptx::mbarrier_init_fence();
  }
  __syncthreads();

  // The partition, its first (sequence, block) and that block's copy. Thread 0 reads the block id
  // beside settle's loads instead of after them: one dependent round trip fewer before the first
  // copy (batch 1: a CTA reads one block, so the chain of loads before it is much of the call). A
  // non-empty partition starts inside its first sequence's blocks, so the entry exists. With
  // early_loads all of it runs before the wait, overlapping the previous kernel (its inputs come
  // from kernels before that one); q always waits.
  MlaPartition part;
  WorkItem cur;
  bool has_work = false;
  auto start_walk = [&]() {
    part = p.parts[blockIdx.y];
    int first_block_id = 0;
    if (tid == 0 && (part.begin_seq < part.end_seq || part.begin_block < part.end_block)) {
      first_block_id = p.block_table[static_cast<int64_t>(part.begin_seq) * p.max_blocks + part.begin_block];
    }
    cur = WorkItem{part.begin_seq, part.begin_block, 0};
    has_work = settle(cur, part, p, tile_row0);
    if (!has_work || tid != 0) return;
    if (cur.seq == part.begin_seq && cur.block == part.begin_block) {
      // load_kv_block(cur, 0), its id read early
      tma_load_kv_tile(s_kv, &p.kv_map, first_block_id * 64, bar_kv, p.kv_evict_first);
    } else {
      load_kv_block(p, s_kv, cur, 0, bar_kv);
    }
  };
  if (p.early_loads) start_walk();
  grid_dependency_wait();  // q (and without early_loads the schedule and tables), the workspace and counters
  grid_dependents_launch();
  if (!p.early_loads) start_walk();
  if (!has_work) return;

  const uint64_t q_desc = ptx::gmma_desc_sw128(s_q, 16, 1024);
  const uint64_t k_desc = ptx::gmma_desc_sw128(s_kv + wg * 32 * 128, 16, 1024);      // keys 32 wg .. 32 wg + 31
  const uint64_t v_desc = ptx::gmma_desc_sw128(s_kv + wg * 4 * kColBlockBytes, 8192, 1024);  // channels 256 wg ..
  const uint64_t p_desc = ptx::gmma_desc_sw128(ptx::smem_addr(p_tile), 16, 1024);

  // Thread 0 starts every copy; the others only wait on the barriers.
  auto load_q = [&](int seq) { load_q_tile(p, s_q, seq, tile_row0, bar_q); };
  auto load_kv = [&](const WorkItem& it, int stage) { load_kv_block(p, s_kv, it, stage, bar_kv); };

  if (tid == 0) load_q(cur.seq);
  uint32_t q_parity = 0, kv_parity = 0;  // parity of each barrier's next completion (bit per stage)
  bool q_loading = true;
  int num_jobs = 0;  // split pieces stored and announced, to merge after the last block (<= 2)

  float o[128], s[16] = {}, m[2], l[2];
  Piece pc = start_piece(p, part, cur.seq, r0, tile_row0);
  auto reset_state = [&]() {
#pragma unroll
    for (int i = 0; i < 128; ++i) o[i] = 0.0f;
    m[0] = m[1] = -INFINITY;
    l[0] = l[1] = 0.0f;
  };
  reset_state();

  for (int stage = 0;; stage ^= 1) {
    WorkItem next = cur;
    const bool has_next = advance(next, part, p, tile_row0);
    const bool piece_ends = !has_next || next.seq != cur.seq;
    // Read here, used at the piece's end: the load is in flight during the block's work.
    const MlaSeqSplit split = piece_ends ? p.seq_splits[cur.seq] : MlaSeqSplit{1, 0};

    __syncthreads();  // everyone is done with the previous stage: its KV buffer, P, row maxima
    if (tid == 0 && has_next) load_kv(next, stage ^ 1);
    if (q_loading) {
      ptx::mbarrier_wait(bar_q, q_parity);
      q_parity ^= 1;
      q_loading = false;
    }
    ptx::mbarrier_wait(bar_kv + 8 * stage, (kv_parity >> stage) & 1);
    kv_parity ^= 1u << stage;
    const int valid = pc.seq_len - cur.block * 64;
    // The sequence ends inside this block: zero the rest (V must be finite). This loop is
    // zero_tail_rows written out: called, it changes this kernel's machine code (address
    // arithmetic reassociated), not just its text.
    if (valid < 64) {
      uint8_t* tile = smem + Smem::kKv + stage * kTileBytes;
      for (int i = tid; i < (64 - valid) * 9 * 8; i += kThreads) {
        const int chunk = i % 8, cb = i / 8 % 9, row = valid + i / 72;
        *reinterpret_cast<uint4*>(tile + cb * kColBlockBytes + row * 128 + chunk * 16) = make_uint4(0, 0, 0, 0);
      }
      ptx::fence_async_proxy();
      __syncthreads();
    }

    gemm_qk(q_desc, k_desc + stage * kStageStep, s);

    // Scores masked, and this warpgroup's row maxima in log2 units.
    // s[i]: row r0 + 8 * (i / 2 % 2), key key0 + 8 * (i / 4) + i % 2.
    const int key0 = cur.block * 64 + wg * 32 + 2 * (lane % 4);  // position of s[0]
    const bool masked = cur.block * 64 + 63 > pc.seq_len - pc.q_len;
    float mx[2] = {-INFINITY, -INFINITY};
    mask_scores_row_max(s, key0, masked, pc.limit, mx);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      mx[h] = quad_max(mx[h]) * p.scale_log2;
      if (lane % 4 == 0) row_max[wg * 64 + r0 + 8 * h] = mx[h];
    }
    __syncthreads();  // row maxima of both halves of the keys

    float alpha[2], m_use[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = r0 + 8 * h;
      alpha[h] = update_row_max(m[h], fmaxf(row_max[r], row_max[64 + r]), m_use[h]);
    }
    exp_scores(s, p.scale_log2, m_use, alpha, sum, l);
    scale_rows(o, alpha);
    // P into shared memory: this warpgroup's 32 keys are 16-byte chunks 4 wg .. 4 wg + 3 of each row.
    store_p(p_tile, s, r0, lane, wg * 4);
    ptx::fence_async_proxy();
    __syncthreads();  // P complete; both warpgroups are past their Q K^T

    if (has_next && piece_ends) {
      if (tid == 0) load_q(next.seq);
      q_loading = true;
    }
    issue_pv(p_desc, v_desc + stage * kStageStep, o);
    ptx::wgmma_wait<0>();
    ptx::fence_registers(o);

    if (piece_ends) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
        if (lane % 4 == 0) row_sum[wg * 64 + r0 + 8 * h] = l[h];
      }
      __syncthreads();  // row sums of both halves of the keys
      const int col0 = wg * 256 + 2 * (lane % 4);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = r0 + 8 * h, i = tile_row0 + r;
        if (i >= pc.rows) continue;
        const float total = row_sum[r] + row_sum[64 + r];
        float inv;
        const float lse = softmax_lse_inv(m[h], total, inv);
        if (split.num_pieces == 1) {
          store_o_row(p.out + (pc.row0 + i) * 512 + col0, o, h, inv);
          if (wg == 0 && lane % 4 == 0) p.lse[pc.row0 + i] = lse;
        } else {
          const int64_t slot_row = piece_slot_row(p, split, pc, i);
          store_o_row(p.partial_out + slot_row * 512 + col0, o, h, inv);
          if (wg == 0 && lane % 4 == 0) p.partial_lse[slot_row] = lse;
        }
      }
      if (split.num_pieces > 1) {  // its merge waits until after the last block
        const MergeJob job = announce_split_piece(p, split, pc);
        if (tid == 0) jobs[num_jobs] = job;
        ++num_jobs;
      }
      if (!has_next) break;
      pc = start_piece(p, part, next.seq, r0, tile_row0);
      reset_state();
    }
    cur = next;
  }

  // Every arrival of this CTA is made; now its merges, first sequence first. No copy is in
  // flight and every wgmma has completed: the KV stages hold the merge scratch.
  if (num_jobs > 0) {
    __syncthreads();  // the jobs thread 0 wrote
    const MergeScratch scratch = merge_scratch_over_kv(smem);
    for (int j = 0; j < num_jobs; ++j) merge_split_tile(p, jobs[j], tile_row0, scratch);
  }
}

}  // namespace mlaserve::ops::sm90
