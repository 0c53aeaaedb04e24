// Split-KV heuristics of the sm90 MLA decode kernel: how many CTAs work on one decode step and
// how the schedule weighs starting a piece against reading blocks. Host-only, no CUDA types.
#pragma once

#include <algorithm>
#include <cstdint>

namespace mlaserve::ops::sm90 {

// Query rows per CTA: one wgmma M tile. A sequence's q_len * n query rows (16 for V3 under
// TP8 or V2-Lite, 128 for V3 on one GPU) are cut into tiles of this many rows; 16-row problems
// pad the tile (the kernel is bound by reading the cache, not by the tensor cores, there).
inline constexpr int kTileRows = 64;

// Cost of starting a piece of a sequence, in units of one 64-token block read: the query tile
// load (64 x 576 bf16, as large as a block), the epilogue store, the pipeline's first wait and,
// when the sequence is split, its share of the combine. The schedule adds it to every
// sequence's block count before dividing the batch evenly over the partitions, so that short
// sequences are not split into pieces smaller than what a piece costs to start.
inline constexpr int kPieceOverheadBlocks = 2;

// What splitting sequences adds to a step, in the same units (64-token blocks a partition reads):
// the pieces' normalised partial outputs written and read back (2 KB per query row and piece,
// f32) and their merge. The schedule kernel deals the step both ways, equal shares of `width`
// blocks that may split sequences (cost: width + this penalty) or whole sequences (cost: the
// largest partition), and keeps the cheaper (MlaPlan::kAuto). The penalty is
//   base + rows_term * min(width, full_width) / full_width:
// the partials' traffic (rows_term, ~rows / 8) costs its full share only when the partitions are
// long, i.e. the step is bound by HBM bandwidth; with short partitions the card is idle around
// them and the merge costs about its latency. Measured on one H200:
//   - long partitions (2026-11-28 22:45, ncu and mla_decode_bench, batch 128 x 4096 tokens:
//     nearly every sequence split in two at 16 heads, every other one at 128): the merge and the
//     partials took 13 us of 180 at 16 heads (~5 blocks of a 64-block share) and 49 us of 344 at
//     128 heads (~18 of 128); 4 + rows / 8 gives 6 and 20;
//   - short ones (2026-11-29 04:33, mla_decode_bench --plans split,whole, batches 1-16, contexts
//     128-2048, bench/NOTES-mla-decode.md): split minus whole's time, over the blocks it saves,
//     puts the penalty near 3 blocks at 16 heads and 6-8 at 128 heads for widths of 1-5 blocks;
//     the flat 20 had kept batch 8 x 1024 tokens x 128 heads whole at 46 us against 24 split,
//     and one sequence of 1024 tokens x 128 heads whole at 47 us against 16.
struct MlaSplitPenalty {
  int base;        // blocks
  int rows_term;   // blocks, at width >= full_width
  int full_width;  // blocks a partition
};
inline MlaSplitPenalty mla_split_penalty(int64_t rows_per_seq) {
  return {4, static_cast<int>(rows_per_seq / 8), 24};
}

// Which decode kernels a step uses, from B and the bound on the lengths that the host knows (the
// lengths themselves stay on the device, so that a step can be a CUDA graph): the partitioned
// kernels (ring or seesaw, below; split sequences merged by the combine kernel) or split S.
// Those overlap one block's P V with another block's S, which pays when a CTA reads several
// blocks; the split-S kernel has the shorter chain per block and merges the pieces of split
// sequences in-kernel (no combine launch). Measured on one H200 (up to the twenty-sixth session
// "the pipeline" is the pipeline kernel, which the ring kernel replaced at <= 16 rows in the
// twenty-eighth session and the seesaw above that in the fifty-third):
//   - 2026-11-28 (bench/NOTES-mla-decode.md v6, the combine kernel after both kernels): batch 1 at
//     4096 tokens split S 14.5-15.4 us vs 16.1-16.2 (16 heads); batch 8 a tie; batch 32-128 the
//     pipeline 4-7% faster at 16 and 128 heads;
//   - 2026-11-29 20:36-20:40 (bench/NOTES-mla-decode.md, since v7's in-kernel merge), the V2-Lite
//     decode step with split S at every batch against this rule's pipeline, context 1024, graph
//     ms, BF16 / FP8: batch 8 +1.1% / +0.8%, 16 0 / +1%, 32 0 / 0, 40 -0.3% / -0.9%, 48 -0.3% /
//     -1.0%, 64 -1.8% / -2.8%, 80 -2.2% / -3.2%, 96 +0.9% / -0.2%, 112 +0.2% / -0.2%, 128 -0.3% /
//     +0.6% (context 4096: batch 8 +2.5%, 16 +0.8%, 64 -0.7%);
//   - 2026-11-30 13:33 (bench/NOTES-mla-decode.md, twenty-sixth session), after the pipeline
//     kernel's narrow form for 16 rows, the step with the band against the pipeline from 8, graph
//     ms, BF16 / FP8: batch 40-80 the band 0.6-3.5% faster, 96 the pipeline 0.6-1.4% faster
//     (the op alone at 1024 tokens: 40 against 45 us), 112 a tie.
//   - 2026-11-30 (bench/NOTES-mla-decode.md, twenty-eighth session), the ring kernel (in the
//     pipeline's place at <= 16 rows) against split S, 16 heads, op us: split S ahead at 2048
//     tokens (batch 64 51 against 56, 96 73-74 against 79) and 4096 (64 88.5-89 against 91, 96
//     126 against 131), the ring from 8192 (64 161 against 162, 96 235 against 245, 112 271
//     against 290-298) and far ahead at 16k-32k (64 x 16k 300 against 306-326, 64 x 32k 578
//     against 677-686); the V2-Lite step at 16k tokens with the ring instead of the band: batch
//     48 -1.3..-2.6%, 64 -1.9..-2.1%.
//   - 2026-12-03 (bench/NOTES-mla-decode.md, fifty-third session), the seesaw against split S
//     below 8 sequences, op us, two rounds: 128 heads b1 x 4096 16.2-16.3 against 17.1-17.4, b2
//     18.0-18.1 / 20.6-20.7, b4 23.4-23.6 / 25.5, b6 27.7-27.9 / 29.3-29.5, b1 x 16k 22.0-22.1 /
//     25.1-25.2, b4 x 1024 14.9 / 15.9-16.2; 64 heads b2 16.6-16.7 / 17.6-17.7, b4 19.4-19.5 /
//     21.2-21.3, b6 21.3-21.4 / 24.8-25.0; 32 heads b4 14.8 / 15.7.
// So the partitioned kernels whenever a sequence has more than kSplitSMaxRows query rows; at
// most that many (one token of 16 heads: V2-Lite, V3 under TP8) from 8 sequences, except from
// kSplitSFromSeqs to kSplitSToSeqs (the decode graphs' padded sizes 48-80) when no sequence is
// known to be longer than kSplitSMaxSeqLen (max_seq_len: a bound the host knows, 0 when it knows
// none).
inline constexpr int64_t kPartitionedMinSeqs = 8;
inline constexpr int64_t kSplitSFromSeqs = 33, kSplitSToSeqs = 80, kSplitSMaxRows = 16;
inline constexpr int64_t kSplitSMaxSeqLen = 4096;
inline bool use_partitioned_kernels(int64_t num_seqs, int64_t rows_per_seq, int64_t max_seq_len) {
  if (rows_per_seq > kSplitSMaxRows) return true;
  const bool split_s_band =
      num_seqs >= kSplitSFromSeqs && num_seqs <= kSplitSToSeqs && max_seq_len <= kSplitSMaxSeqLen;
  return num_seqs >= kPartitionedMinSeqs && !split_s_band;
}

// Where use_partitioned_kernels picks them, problems of at most this many query rows a sequence
// (16 heads and one token: V2-Lite, V3 under TP8) run the ring kernel (mla_decode_sm90_ring.cuh:
// S^T = K Q^T and O^T as m64n16 wgmma, KV copies in a ring of 25 column blocks). H200,
// 2026-11-30 (bench/NOTES-mla-decode.md, twenty-eighth session), against the pipeline kernel's
// narrow form it replaced: b128 x 4096 158 -> 150 us (96.5% of copy bandwidth), b32 x 32k 306 ->
// 294 us (98.2%), b8 x 4096 20.6 -> 19.7 us; batches 16-96 at 4096 tokens and 256 at 1024 within
// noise.
// More rows run the seesaw kernel (mla_decode_sm90_seesaw.cuh: the warpgroups take a piece's
// blocks in pairs; a producer warpgroup copies each third of a KV stage as soon as it is free).
// It replaced the pipeline kernel, which it beat at every shape measured. H200, 2026-12-03
// (bench/NOTES-mla-decode.md, fifty-third session), graph us, pipeline / seesaw, three rounds:
// 128 heads b4 x 4096 25.4-25.9 / 23.4-23.8, b8 36.3-37.0 / 33.9-34.2, b16 58.6-59.0 /
// 54.2-54.5, b24 80.5-81.1 / 74.4-74.8, b8 x 1024 23.1-23.2 / 20.7-21.2, b16 x 8192 90.0-91.0 /
// 81.8-82.1, b8 x 4096 x 2 tokens 57.9-61.6 / 52.8-53.3, 32-256 sequences 4-10%; 64 heads b16 x
// 4096 38.1-38.4 / 36.6-36.8, b64 x 4096 119.0-120.0 / 115.9, b128 x 4096 161.1-167.6 /
// 158.6-159.8, b32 x 8192 102.8-103.3 / 99.9-101.3, b64 x 4096 x 2 tokens 168.9-172.0 /
// 128.6-131.4; 32 heads b8 x 4096 22.6-22.8 / 20.2-20.7, b16 31.9-32.1 / 30.0-30.9, b64
// 98.1-99.3 / 95.2-95.4, b128 156.9-158.0 / 151.9-152.5, b32 x 8192 95.3-98.4 / 88.5-89.1; 16
// heads x 2 tokens b64 x 4096 98.2-98.3 / 95.2, b128 157.2-160.7 / 152.2-152.6; x 3 tokens b64
// 113.2-114.3 / 106.7-107.2.
inline constexpr int kRingMaxRows = 16;
inline bool use_ring_kernel(int64_t rows_per_seq) { return rows_per_seq <= kRingMaxRows; }

// The decode kernel a call runs, from its schedule's choice (MlaDecodeSchedule::partitioned, set
// by use_partitioned_kernels or forced by tests and benchmarks) and its query rows a sequence.
enum class DecodeKernel { kSplitS, kRing, kSeesaw };
inline DecodeKernel decode_kernel(bool partitioned, int64_t rows_per_seq) {
  if (!partitioned) return DecodeKernel::kSplitS;
  return use_ring_kernel(rows_per_seq) ? DecodeKernel::kRing : DecodeKernel::kSeesaw;
}
inline const char* decode_kernel_name(DecodeKernel k) {
  switch (k) {
    case DecodeKernel::kSplitS: return "split_s";
    case DecodeKernel::kRing: return "ring";
    case DecodeKernel::kSeesaw: return "seesaw";
  }
  return "?";
}

// The KV copies tag their lines L2 evict-first when each cache block crosses from L2 once: one
// query tile a sequence (at most 64 query rows), or two that share each block by multicast
// (kv_multicast), so that the block, read once, does not push out lines that are read again (the
// step's metadata, the query rows, other layers' weights in the model). Otherwise the other
// tiles' CTAs read the same block from L2. H200, evict-first against plain copies, three rounds:
// 2026-11-30 (bench/NOTES-mla-decode.md, twenty-ninth session) 16 heads -1 to -2.5% (b8, b128 x
// 4096, one and two tokens; b32 x 32k), the V2-Lite BF16 step at 64 x 4096 -1%; 128 heads (two
// tiles) +3 to +5% at b128 x 4096; 2026-12-04 (fifty-fifth session) 128 heads with multicast,
// eager, -1 to -2% (b128 x 4096, b32 x 8192, b16 x 32k).
inline bool use_kv_evict_first(int num_m_tiles, bool kv_multicast) { return num_m_tiles == 1 || kv_multicast; }

// Whether the seesaw kernel merges its split sequences itself (mla_decode_sm90_merge.cuh) instead
// of leaving them to the combine kernel: its grid must be one wave (every CTA resident: the merge
// waits for the other pieces), and it pays from 16 sequences. H200, 2026-12-04 (bench/NOTES-mla-
// decode.md, fifty-fourth session), graph us, combine kernel / in-kernel, three rounds: b16 x 4096
// x 128 heads 55.2 / 50.4, b32 x 8192 x 128 168.6 / 156.1, b64 x 4096 x 64 117.0 / 100.5, b32 x
// 4096 x 32 52.3 / 49.7; below 16 it loses (b8 x 4096 x 128 heads 35.2 / 37.5, b4 x 4096 x 64
// 19.6 / 20.2, b8 x 4096 x 16 heads x 2 tokens 20.5 / 21.4, b1 x 16k x 128 21.3 / 22.0); whole
// plans (b64, b128 x 4096 x 128 heads) within 1%.
inline constexpr int64_t kSeesawMergeMinSeqs = 16;
inline bool use_seesaw_merge(bool seesaw, int64_t num_seqs, int64_t ctas, int num_sms) {
  return seesaw && num_seqs >= kSeesawMergeMinSeqs && ctas <= num_sms;
}

// Whether the seesaw runs each partition's query tiles 2k, 2k + 1 as one 2-CTA cluster that copies
// each KV block once into both (kv_multicast in mla_decode_sm90_seesaw.cuh). Both CTAs of a cluster
// must walk the same blocks: a CTA skips the sequences whose rows end before its tile
// (settle), so every sequence's rows (q_len * n_heads) must be a multiple of two tiles, which a
// multiple of 128 heads guarantees. And every cluster must be resident at once (the GPU holds
// max_clusters of them: clusters live within a GPC), as for the one-wave grid the plan assumes and
// the in-kernel merge needs.
// Why: with two tiles every block crosses from L2 twice. tools/l2_feed_probe.cu (H200, 2026-12-04,
// fifty-fifth session), the copies alone at b128 x 4096 tokens: 205 us each tile for itself, 174
// us shared. The kernel gains less (its pairs wait on each copy's latency, not on the L2, and the
// two CTAs run in step); H200, same session (bench/NOTES-mla-decode.md), graph us, plain / shared,
// three rounds: b8 x 4096 37.3 / 35.4, b16 55.7 / 52.4, b24 70.8 / 67.0, b64 x 4097 145.4 / 138.3,
// b32 x 8192 160.0 / 152.2, b16 x 32k 293 / 254, b4 x 4096 x 2 tokens 35.0 / 34.0, b128 x 4096
// eager 246.6 / 242.8 (its graph figure swings 250-290 either way); but b1 x 4096 16.9 / 17.2
// (eager 24.5 / 25.9) and b256 x 1024 (four pieces a partition) 152.8 / 155.5, eager 163.3 /
// 170.7. So from kKvMulticastMinSeqs sequences, up to two a partition.
inline constexpr int64_t kKvMulticastMinSeqs = 4;
inline bool use_kv_multicast(bool seesaw, int64_t n_heads, int64_t num_m_tiles, int64_t num_parts, int64_t num_seqs,
                             int max_clusters) {
  return seesaw && n_heads % (2 * kTileRows) == 0 && num_m_tiles % 2 == 0 && num_seqs >= kKvMulticastMinSeqs &&
         num_seqs <= 2 * num_parts && num_m_tiles / 2 * num_parts <= max_clusters;
}

struct MlaSplitPlan {
  int num_m_tiles;  // query tiles per sequence: ceil(max_q_len * n / kTileRows)
  int num_parts;    // KV partitions: CTAs per query tile, so that one wave fills the GPU
};

// One wave of num_m_tiles * num_parts <= num_sms CTAs (one CTA per SM: the kernel uses ~226 KB
// of shared memory). Every partition gets an equal share of the step's blocks, so the wave
// ends together whatever the mix of sequence lengths.
inline MlaSplitPlan plan_mla_split(int64_t n_heads, int64_t max_q_len, int num_sms) {
  const int64_t rows = n_heads * max_q_len;
  const int num_m_tiles = static_cast<int>((rows + kTileRows - 1) / kTileRows);
  return {num_m_tiles, std::max(1, num_sms / num_m_tiles)};
}

}  // namespace mlaserve::ops::sm90
