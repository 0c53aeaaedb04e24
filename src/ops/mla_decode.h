// MLA decode attention, the absorbed ("matrix absorption") form over the paged latent cache.
// MODEL_SPEC.md §4. This is MQA with one 576-wide "KV head" shared by every query head:
//
//   cache row (per token, per layer):  [ c_n (kv_lora_rank = 512) | k_pe (rope = 64) ]
//   query (per token, per head):       [ q_lat = W_UK^T q_nope (512) | q_pe (64) ]
//   score[h, t, s] = softmax_scale * dot(query[t, h, :576], cache_row[s, :576])
//   out[t, h, :512] = sum_s softmax_s(score[h, t, s]) * cache_row[s, :512]   (the latent output)
//   lse[t, h]       = log(sum_s exp(score[h, t, s]))                        (natural log)
//
// softmax_scale is passed explicitly (the model's (dn + dr)^-1/2 * m^2, never 1/sqrt(576)).
//
// Paged layout: the cache of one layer is [num_blocks, kBlockSize = 64, 576]; sequence b's
// token at position p lives in block block_table[b, p / 64], row p % 64. Blocks of a sequence
// need not be contiguous or ordered.
//
// Batch layout: B sequences, each with q_len[b] >= 1 query tokens (1 for plain decode, a few
// for speculative verification), flattened in order into T = sum_b q_len[b] query rows;
// query_start[b] is the first row of sequence b (query_start has B + 1 entries, the last = T).
// seq_lens[b] counts every key of sequence b INCLUDING its q_len new tokens, whose rows must
// already be in the cache. The causal mask is aligned bottom-right: query j (0-based) of
// sequence b sees keys 0 .. seq_lens[b] - q_len[b] + j.
#pragma once

#include <cstdint>
#include <memory>

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

inline constexpr int64_t kKvBlockSize = 64;   // tokens per cache block
inline constexpr int64_t kLatentDim = 512;    // kv_lora_rank: the value part of a cache row
inline constexpr int64_t kRopeDim = 64;       // qk_rope_head_dim
inline constexpr int64_t kCacheRowDim = 576;  // kLatentDim + kRopeDim

// Steps whose longest sequence has more tokens than this never take the split-S kernel (sm90
// heuristics: use_partitioned_kernels): past it the ring kernel streams the cache faster. A caller
// that knows a bound on its step's lengths passes it when it plans the step; the model keys its
// decode graphs on which side of this bound a step falls (DeepSeekModel::decode_seq_len_class)
// where mla_decode_kernel_depends_on_length says the side matters.
inline constexpr int64_t kMlaDecodeShortSeqLen = 4096;

// Whether the GPU decode kernel of a step of num_seqs sequences with rows_per_seq query rows each
// (q_len * n_heads) depends on the length bound passed to its plan. Host arithmetic only.
bool mla_decode_kernel_depends_on_length(int64_t num_seqs, int64_t rows_per_seq);

struct MlaDecodeArgs {
  Tensor q;            // [T, n_heads, 576]   bf16 (GPU) or f32/bf16 (CPU)
  Tensor kv_cache;     // [num_blocks, 64, 576] bf16 (GPU) or f32/bf16 (CPU)
  Tensor block_table;  // [B, max_blocks_per_seq] i32
  Tensor seq_lens;     // [B] i32: keys per sequence, the new tokens included
  Tensor query_start;  // [B + 1] i32: first query row of each sequence; query_start[B] = T
  float softmax_scale = 0.0f;
  // GPU, both sm90 kernels: everything but q was written by kernels that ended
  // before the one just before this call on the stream (the model: q comes from the absorption
  // kernel, the cache rows, tables and schedule from earlier ones). The kernel then reads the
  // schedule and tables and starts its first cache block's copy before it waits for that kernel
  // (programmatic dependent launch), overlapping them with it. Never set it when the schedule
  // update or a cache write is the previous kernel.
  bool early_loads = false;
};

struct MlaDecodeOutputs {
  Tensor out;  // [T, n_heads, 512]  f32 (CPU) or bf16 (GPU)
  Tensor lse;  // [T, n_heads]       f32
};

// CPU reference: plain loops, fp32 accumulation, a two-pass softmax per (token, head). It
// accepts any row width D (q [T, n, D], kv_cache [num_blocks, block_size, D]), any latent width
// (out's last dimension, <= D) and any block size, so that tiny test models can use it; the CUDA
// kernel is specialised to 576 / 512 / 64.
void mla_decode_cpu(const MlaDecodeArgs& args, MlaDecodeOutputs& outputs);

#ifdef MLASERVE_WITH_CUDA
struct MlaDecodeSchedule;  // the GPU's split-KV plan (below)
#else
struct MlaDecodeSchedule {};  // a build without CUDA never plans one
#endif

// One decode step's plan, made once per step and shared by every layer: on the GPU the split-KV
// schedule for these seq_lens (planned on the stream, no host synchronisation); on the host
// nothing. Device-neutral so that the model graph needs no CUDA types.
class MlaDecodePlan {
 public:
  // seq_lens [B] i32 on the step's device; n_heads and max_q_len as the calls will use them;
  // max_seq_len a bound on every sequence's length that the host knows (0: none), which may pick
  // the kernel (kMlaDecodeShortSeqLen); kv_multicast: MlaDecodeSchedule::kv_multicast.
  static std::shared_ptr<const MlaDecodePlan> make(const Tensor& seq_lens, int64_t n_heads, int64_t max_q_len,
                                                   int64_t max_seq_len, Stream stream = {}, bool kv_multicast = true);
  ~MlaDecodePlan();
  const MlaDecodeSchedule* schedule() const { return schedule_.get(); }

 private:
  std::unique_ptr<MlaDecodeSchedule> schedule_;  // null on the host
};

// Dispatch by device (ops/dispatch.h). On the GPU, `plan` is this step's plan; null plans a
// one-off schedule and waits for the stream (tests, one-off calls).
void mla_decode(const MlaDecodeArgs& args, MlaDecodeOutputs& outputs, const MlaDecodePlan* plan, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA (Hopper, sm_90a): src/ops/cuda/mla_decode_sm90.{cuh,cu} -------------------------
//
// The kernel splits each sequence's context over the SMs and merges the pieces by
// log-sum-exp. Which CTA reads which blocks depends only on seq_lens, so it is planned once
// per decode step (MlaDecodeSchedule) and reused by every layer. Updating a schedule and
// running the kernel never synchronise the host: a step that does both can be captured in a
// CUDA graph, as long as the schedule was created (allocated) beforehand.

// How a step's blocks are dealt to the partitions. kSplit: equal shares of the blocks, a
// boundary may split a sequence into pieces merged afterwards. kWhole: each partition reads whole
// sequences (boundaries at the sequence starts nearest to the equal shares' boundaries): no
// partial outputs and no merge, at the price of uneven shares. kAuto: the schedule kernel
// compares the two plans' costs for this step's lengths (heuristics.h: mla_split_penalty).
enum class MlaPlan : int32_t { kAuto = 0, kSplit = 1, kWhole = 2 };

// The split-KV plan and workspace of one decode step (all tensors on the GPU).
struct MlaDecodeSchedule {
  int64_t max_seqs = 0;     // capacity: the largest batch B it can plan (<= 32768)
  int64_t n_heads = 0;      // query heads the kernel will be called with
  int64_t max_q_len = 0;    // most query tokens per sequence; rows past it are never computed
  int64_t num_m_tiles = 0;  // 64-row query tiles per sequence
  int64_t num_parts = 0;    // KV partitions P (CTAs per query tile)
  int64_t num_seqs = 0;     // B of the last update
  int64_t combine_ctas = 0; // persistent CTAs of the combine kernel
  bool partitioned = true;  // decode kernels: ring or seesaw, then the combine unless the seesaw
                            // merged in-kernel (true), or split S; the update sets it from B
                            // (use_partitioned_kernels)
  MlaPlan plan = MlaPlan::kAuto;  // which plan the updates make (tests force each)
  bool kv_multicast = true; // the seesaw's query tile pairs share each KV block where they can
                            // (use_kv_multicast); tests and benchmarks turn it off to compare
  Tensor parts;             // [P, 8] i32: each partition's (sequence, block) range
  Tensor seq_splits;        // [max_seqs, 2] i32: pieces per sequence, first workspace slot
  Tensor split_seqs;        // [P] i32: the sequences read by several partitions, then -1
  Tensor partial_out;       // [2P, num_m_tiles * 64, 512] f32: partial outputs of split sequences
  Tensor partial_lse;       // [2P, num_m_tiles * 64] f32
  Tensor merge_counters;    // [2P, num_m_tiles] i32: split S's in-kernel merge; each update zeroes them
};

// Allocates a schedule for batches of up to max_seqs sequences with up to max_q_len query
// tokens each, sized for this device's SM count: the decode kernels run one wave of one CTA per
// SM.
MlaDecodeSchedule mla_decode_schedule_create(int64_t max_seqs, int64_t n_heads, int64_t max_q_len);

// Plans the step for seq_lens ([B] i32 on the GPU, B <= max_seqs): one small kernel on stream.
// max_seq_len: a bound on every sequence's length that the host knows, 0 when it knows none
// (both pick the kernel, use_partitioned_kernels; the lengths themselves stay on the device).
void mla_decode_schedule_update(MlaDecodeSchedule& schedule, const Tensor& seq_lens, cudaStream_t stream,
                                int64_t max_seq_len = 0);

// One layer's decode attention with a schedule updated for this step's seq_lens. q, kv_cache
// and out are bf16, the rest as in MlaDecodeArgs/MlaDecodeOutputs, everything on the GPU; the
// kernel is specialised to rows of 576, latent 512 and blocks of 64. Shapes are checked here;
// the contents of block_table, seq_lens and query_start are trusted (the CPU reference checks
// them): every sequence needs 1 <= q_len <= max_q_len <= seq_len. Asynchronous on stream.
void mla_decode_cuda(const MlaDecodeArgs& args, MlaDecodeOutputs& outputs, const MlaDecodeSchedule& schedule,
                     cudaStream_t stream);

// Convenience for tests and one-off calls: reads query_start back to size a schedule, builds
// it, runs, and waits for the stream (the schedule is freed on return).
void mla_decode_cuda(const MlaDecodeArgs& args, MlaDecodeOutputs& outputs, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
