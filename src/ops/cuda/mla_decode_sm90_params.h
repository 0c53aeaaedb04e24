// Launch parameters of the sm90 MLA decode kernels (mla_decode_sm90*.cuh): plain structs passed
// by value, every pointer to device memory. Shapes use the names of ops/mla_decode.h:
// T query rows, n heads, B sequences, P KV partitions.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>

#include <cstdint>

namespace mlaserve::ops::sm90 {

// One KV partition's share of a decode step: the blocks from (begin_seq, begin_block) up to,
// not including, (end_seq, end_block), walking the sequences in batch order and each sequence's
// blocks in position order. Written by the schedule kernel, read by the decode kernel.
struct MlaPartition {
  int32_t begin_seq;    // first sequence the partition reads
  int32_t begin_block;  // first block of begin_seq it reads (0: it starts that sequence)
  int32_t end_seq;      // sequence where the range stops (B when it runs to the batch's end)
  int32_t end_block;    // the range stops before this block of end_seq (0: end_seq untouched)
  int32_t begin_piece;  // index of begin_seq's piece that this partition computes (see below)
  int32_t unused[3];    // pads the struct to 32 bytes (two 16-byte loads)
};

// How a sequence's blocks are split over partitions. A "piece" is the part of one sequence that
// one partition reads; a sequence read by one partition (num_pieces == 1) is written straight to
// out/lse, otherwise each piece writes a partial result to slot first_slot + piece index, and
// the combine kernel merges the slots by log-sum-exp.
struct MlaSeqSplit {
  int32_t num_pieces;  // partitions that read this sequence (>= 1)
  int32_t first_slot;  // first workspace slot of its pieces (meaningful when num_pieces > 1)
};

// mla_decode_sm90_schedule_kernel: one CTA (with (B + 1) ints of dynamic shared memory) turns
// seq_lens into the partitions and splits.
struct MlaScheduleParams {
  const int32_t* seq_lens;    // [B] keys per sequence
  MlaPartition* parts;        // [P] out
  MlaSeqSplit* seq_splits;    // [B] out
  int32_t* split_seqs;        // [P] out: the split sequences in batch order, then -1
  int32_t* merge_counters;    // [2P, num_m_tiles] out: zeroed (the split-S kernel's merge counters)
  int32_t num_merge_counters; // 2P * num_m_tiles
  int32_t num_seqs;           // B
  int32_t num_parts;          // P
  int32_t piece_overhead;     // cost of starting a piece, in 64-token blocks (heuristics.h)
  int32_t penalty_base;       // cost of splitting any sequence (partials + merge), same units:
  int32_t penalty_rows;       //   base + rows * min(width, full_width) / full_width (heuristics.h)
  int32_t penalty_full_width;
  int32_t plan;               // MlaPlan: kAuto compares the two plans' costs, or one is forced
};

// mla_decode_sm90_{pipeline,split_s}_kernel (grid: num_m_tiles x P) and
// mla_decode_sm90_combine_kernel (persistent grid over (split sequence, query row) items; after
// the pipeline kernel only: the split-S kernel merges its split sequences itself).
struct MlaDecodeParams {
  CUtensorMap q_map;               // q as [T * n, 576] bf16, boxes of q_box_rows x 64, 128-byte swizzle
  CUtensorMap kv_map;              // kv_cache as [num_blocks * 64, 576] bf16, boxes of 64 x 64
  CUtensorMap kv_group_map;        // kv_cache as [9 column blocks][num_blocks * 64][64] bf16 (column blocks 128
                                   // bytes apart), boxes of 4 column blocks x 64 rows: four [64][64] tiles a copy
  const int32_t* block_table;      // [B, max_blocks]
  const int32_t* seq_lens;         // [B] keys per sequence, the new tokens included
  const int32_t* query_start;      // [B + 1] first query row of each sequence
  const MlaPartition* parts;       // [P] from the schedule
  const MlaSeqSplit* seq_splits;   // [B] from the schedule
  const int32_t* split_seqs;       // [P] from the schedule: sequences to combine, then -1
  __nv_bfloat16* out;              // [T, n, 512]
  float* lse;                      // [T, n] natural log
  float* partial_out;              // [2P, partial_rows, 512] normalised partial outputs
  float* partial_lse;              // [2P, partial_rows] their log-sum-exp (natural log)
  int32_t n_heads;                 // n
  int32_t max_blocks;              // block_table's row length
  int32_t partial_rows;            // num_m_tiles * 64: rows of one workspace slot
  int32_t max_rows;                // max_q_len * n: most query rows of one sequence
  int32_t q_box_rows;              // rows of q_map's box: min(max_rows, 64)
  int32_t num_parts;               // P
  float scale_log2;                // softmax_scale * log2(e): scores go through exp2
  int32_t* merge_counters;         // [2P, num_m_tiles] split S: arrivals per (split sequence, tile); 0 between calls
  int32_t num_seqs;                // B (split S: bounds its L2 prefetch of the step's metadata)
  bool early_loads;                // split S: MlaDecodeArgs::early_loads
  bool kv_evict_first;             // KV copies tagged L2 evict-first (use_kv_evict_first)
  bool merge_in_kernel;            // the seesaw merges its split sequences itself (its grid is one wave)
  bool kv_multicast;               // the seesaw: query tiles 2k, 2k + 1 of a partition are one 2-CTA cluster
                                   // that shares each KV block by TMA multicast (use_kv_multicast)
};

}  // namespace mlaserve::ops::sm90
