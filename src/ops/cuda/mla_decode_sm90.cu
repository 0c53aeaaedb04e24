// MLA decode attention on Hopper (sm_90a): launch code and argument checks. The design note
// and the schedule kernel are in mla_decode_sm90.cuh, the three decode kernels in
// mla_decode_sm90_{ring,seesaw,split_s}.cuh (what they share in mla_decode_sm90_common.cuh), the
// merge of split sequences (combine kernel, in-kernel merge) in mla_decode_sm90_merge.cuh, the
// split and kernel heuristics in mla_decode_sm90_heuristics.h.
#include "ops/cuda/mla_decode_sm90.cuh"
#include "ops/cuda/mla_decode_sm90_merge.cuh"
#include "ops/cuda/mla_decode_sm90_ring.cuh"
#include "ops/cuda/mla_decode_sm90_seesaw.cuh"
#include "ops/cuda/mla_decode_sm90_split_s.cuh"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/tensor_map.h"
#include "ops/mla_decode.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "mla_decode_cuda";

static_assert(sizeof(sm90::MlaPartition) == 8 * sizeof(int32_t), "MlaDecodeSchedule::parts is [P, 8] i32");
static_assert(sizeof(sm90::MlaSeqSplit) == 2 * sizeof(int32_t), "MlaDecodeSchedule::seq_splits is [B, 2] i32");
static_assert(sm90::kSplitSMaxSeqLen == kMlaDecodeShortSeqLen, "the model's decode graph classes follow the rule");

void check_tensor(const Tensor& t, std::string_view name, DType dtype, const Shape& shape) {
  MLA_CHECK(t.device() == Device::kCUDA, "{}: {} must be on the GPU", kOp, name);
  MLA_CHECK(t.dtype() == dtype, "{}: {} must be {}, got {}", kOp, name, dtype_name(dtype), dtype_name(t.dtype()));
  MLA_CHECK(t.shape() == shape, "{}: {} must be {}, got {}", kOp, name, shape_str(shape), shape_str(t.shape()));
}

template <typename T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw());
}

// t viewed as [rows, 576] bf16, read in boxes of box_rows x 64 channels with the 128-byte swizzle
// of the kernel's tile layout; boxes past the last row read as zeros.
CUtensorMap row_tile_map(const Tensor& t, int64_t rows, int box_rows) {
  return tma::rows_map(kOp, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, t.raw(), rows, kCacheRowDim, 64,
                       static_cast<cuuint32_t>(box_rows));
}

// The cache's rows as column blocks ([9][rows][64], column block c at byte 128 c of each row), read
// 4 column blocks x 64 rows at a time: one copy lands as the four [64 rows][128 B] swizzled tiles
// that four copies of row_tile_map's boxes would (the swizzle follows the shared-memory address).
CUtensorMap column_block_map(const Tensor& t, int64_t rows) {
  const cuuint64_t dims[3] = {64, static_cast<cuuint64_t>(rows), kCacheRowDim / 64};
  const cuuint64_t strides[2] = {kCacheRowDim * 2, 128};
  const cuuint32_t box[3] = {64, static_cast<cuuint32_t>(sm90::kTileRows), 4};
  return tma::tiled_map(kOp, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, t.raw(), 3, dims, strides, box);
}

// 2-CTA clusters of the seesaw kernel that the current GPU holds at once (use_kv_multicast), asked
// once per device; 0 when the GPU refuses them.
int seesaw_pairs_held() {
  static gpu::PerDeviceInts counts{};
  return gpu::cached_per_device(counts, gpu::current_device(), "seesaw_pairs_held", [](int) {
    MLA_CUDA_CHECK(cudaFuncSetAttribute(sm90::mla_decode_sm90_seesaw_kernel,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, sm90::kSeesawSmemBytes));
    cudaLaunchAttribute attrs[2];
    const cudaLaunchConfig_t config = gpu::launch_config(
        gpu::LaunchShape{dim3(2, 1), dim3(sm90::kSeesawThreads), sm90::kSeesawSmemBytes, 2}, nullptr, attrs);
    int clusters = 0;
    if (cudaOccupancyMaxActiveClusters(&clusters, sm90::mla_decode_sm90_seesaw_kernel, &config) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return clusters;
  });
}

}  // namespace

MlaDecodeSchedule mla_decode_schedule_create(int64_t max_seqs, int64_t n_heads, int64_t max_q_len) {
  MLA_CHECK(max_seqs >= 1 && max_seqs <= sm90::kMaxScheduleSeqs && n_heads >= 1 && max_q_len >= 1,
            "{}: a schedule needs 1 <= max_seqs <= {} and n_heads, max_q_len >= 1, got {}, {}, {}", kOp,
            sm90::kMaxScheduleSeqs, max_seqs, n_heads, max_q_len);
  const int sms = gpu::device_sm_count();
  const sm90::MlaSplitPlan plan = sm90::plan_mla_split(n_heads, max_q_len, sms);
  MlaDecodeSchedule s;
  s.max_seqs = max_seqs;
  s.n_heads = n_heads;
  s.max_q_len = max_q_len;
  s.num_m_tiles = plan.num_m_tiles;
  s.num_parts = plan.num_parts;
  s.combine_ctas = static_cast<int64_t>(sms) * sm90::kCombineCtasPerSm;
  const int64_t rows = s.num_m_tiles * sm90::kTileRows;
  s.parts = Tensor::empty({s.num_parts, 8}, DType::kI32, Device::kCUDA);
  s.seq_splits = Tensor::empty({max_seqs, 2}, DType::kI32, Device::kCUDA);
  s.split_seqs = Tensor::empty({s.num_parts}, DType::kI32, Device::kCUDA);
  s.partial_out = Tensor::empty({2 * s.num_parts, rows, kLatentDim}, DType::kF32, Device::kCUDA);
  s.partial_lse = Tensor::empty({2 * s.num_parts, rows}, DType::kF32, Device::kCUDA);
  s.merge_counters = Tensor::empty({2 * s.num_parts, s.num_m_tiles}, DType::kI32, Device::kCUDA);  // zeroed by updates
  return s;
}

void mla_decode_schedule_update(MlaDecodeSchedule& schedule, const Tensor& seq_lens, cudaStream_t stream,
                                int64_t max_seq_len) {
  MLA_CHECK(seq_lens.ndim() == 1, "{}: seq_lens must be [B], got {}", kOp, shape_str(seq_lens.shape()));
  const int64_t b = seq_lens.dim(0);
  MLA_CHECK(b >= 1 && b <= schedule.max_seqs, "{}: batch of {} sequences, the schedule holds 1 .. {}", kOp, b,
            schedule.max_seqs);
  check_tensor(seq_lens, "seq_lens", DType::kI32, {b});
  schedule.num_seqs = b;
  MLA_CHECK(max_seq_len >= 0, "{}: max_seq_len must be >= 0 (0: unknown), got {}", kOp, max_seq_len);
  const int64_t rows_per_seq = schedule.n_heads * schedule.max_q_len;
  schedule.partitioned = sm90::use_partitioned_kernels(b, rows_per_seq, max_seq_len);

  sm90::MlaScheduleParams p{};
  p.seq_lens = ptr<const int32_t>(seq_lens);
  p.parts = ptr<sm90::MlaPartition>(schedule.parts);
  p.seq_splits = ptr<sm90::MlaSeqSplit>(schedule.seq_splits);
  p.split_seqs = ptr<int32_t>(schedule.split_seqs);
  p.merge_counters = ptr<int32_t>(schedule.merge_counters);
  p.num_merge_counters = static_cast<int32_t>(schedule.merge_counters.numel());
  p.num_seqs = static_cast<int32_t>(b);
  p.num_parts = static_cast<int32_t>(schedule.num_parts);
  p.piece_overhead = sm90::kPieceOverheadBlocks;
  const sm90::MlaSplitPenalty penalty = sm90::mla_split_penalty(schedule.n_heads * schedule.max_q_len);
  p.penalty_base = penalty.base;
  p.penalty_rows = penalty.rows_term;
  p.penalty_full_width = penalty.full_width;
  p.plan = static_cast<int32_t>(schedule.plan);
  const size_t smem = static_cast<size_t>(b + 1) * sizeof(int32_t);
  MLA_CUDA_CHECK(cudaFuncSetAttribute(sm90::mla_decode_sm90_schedule_kernel,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  sm90::mla_decode_sm90_schedule_kernel<<<1, sm90::kScheduleThreads, smem, stream>>>(p);
  MLA_CUDA_CHECK_LAUNCH();
}

void mla_decode_cuda(const MlaDecodeArgs& args, MlaDecodeOutputs& outputs, const MlaDecodeSchedule& schedule,
                     cudaStream_t stream) {
  MLA_CHECK(args.q.ndim() == 3, "{}: q must be [T, n_heads, 576], got {}", kOp, shape_str(args.q.shape()));
  MLA_CHECK(args.kv_cache.ndim() == 3, "{}: kv_cache must be [num_blocks, 64, 576], got {}", kOp,
            shape_str(args.kv_cache.shape()));
  MLA_CHECK(args.block_table.ndim() == 2, "{}: block_table must be [B, max_blocks], got {}", kOp,
            shape_str(args.block_table.shape()));
  const int64_t t = args.q.dim(0), n = args.q.dim(1), b = args.block_table.dim(0);
  check_tensor(args.q, "q", DType::kBF16, {t, n, kCacheRowDim});
  check_tensor(args.kv_cache, "kv_cache", DType::kBF16, {args.kv_cache.dim(0), kKvBlockSize, kCacheRowDim});
  check_tensor(args.block_table, "block_table", DType::kI32, args.block_table.shape());
  check_tensor(args.seq_lens, "seq_lens", DType::kI32, {b});
  check_tensor(args.query_start, "query_start", DType::kI32, {b + 1});
  check_tensor(outputs.out, "out", DType::kBF16, {t, n, kLatentDim});
  check_tensor(outputs.lse, "lse", DType::kF32, {t, n});
  MLA_CHECK(std::isfinite(args.softmax_scale) && args.softmax_scale > 0.0f,
            "{}: softmax_scale must be positive and finite, got {}", kOp, args.softmax_scale);
  MLA_CHECK(n == schedule.n_heads && b == schedule.num_seqs,
            "{}: the schedule was made for {} heads and updated for {} sequences; the call has {} and {}", kOp,
            schedule.n_heads, schedule.num_seqs, n, b);
  MLA_CHECK(args.kv_cache.dim(0) * kKvBlockSize < (int64_t{1} << 31) && t * n < (int64_t{1} << 31),
            "{}: the kernel addresses cache and query rows with 32-bit coordinates", kOp);
  MLA_CHECK(t >= b && t <= b * schedule.max_q_len, "{}: {} query rows for {} sequences of at most {} tokens",
            kOp, t, b, schedule.max_q_len);

  sm90::MlaDecodeParams p{};
  p.max_rows = static_cast<int32_t>(schedule.max_q_len * n);
  p.q_box_rows = std::min(p.max_rows, sm90::kTileRows);
  p.q_map = row_tile_map(args.q, t * n, p.q_box_rows);
  p.kv_map = row_tile_map(args.kv_cache, args.kv_cache.dim(0) * kKvBlockSize, sm90::kTileRows);
  p.kv_group_map = column_block_map(args.kv_cache, args.kv_cache.dim(0) * kKvBlockSize);
  p.block_table = ptr<const int32_t>(args.block_table);
  p.seq_lens = ptr<const int32_t>(args.seq_lens);
  p.query_start = ptr<const int32_t>(args.query_start);
  p.parts = ptr<const sm90::MlaPartition>(schedule.parts);
  p.seq_splits = ptr<const sm90::MlaSeqSplit>(schedule.seq_splits);
  p.out = ptr<__nv_bfloat16>(outputs.out);
  p.lse = ptr<float>(outputs.lse);
  p.partial_out = ptr<float>(schedule.partial_out);
  p.partial_lse = ptr<float>(schedule.partial_lse);
  p.n_heads = static_cast<int32_t>(n);
  p.max_blocks = static_cast<int32_t>(args.block_table.dim(1));
  p.partial_rows = static_cast<int32_t>(schedule.num_m_tiles * sm90::kTileRows);
  p.num_parts = static_cast<int32_t>(schedule.num_parts);
  p.split_seqs = ptr<const int32_t>(schedule.split_seqs);
  p.merge_counters = ptr<int32_t>(schedule.merge_counters);
  p.num_seqs = static_cast<int32_t>(b);
  p.scale_log2 = args.softmax_scale * 1.4426950408889634f;
  p.early_loads = args.early_loads;

  // The split-S kernel's CTAs wait for each other (in-kernel merge): its grid must be one wave,
  // one CTA per SM, which plan_mla_split gives unless there are more query tiles than SMs.
  MLA_CHECK(schedule.partitioned || schedule.num_m_tiles * schedule.num_parts <= gpu::device_sm_count(),
            "{}: {} x {} CTAs of the split-S kernel do not fit the SMs in one wave", kOp, schedule.num_m_tiles,
            schedule.num_parts);
  using sm90::DecodeKernel;
  const DecodeKernel kernel = sm90::decode_kernel(schedule.partitioned, p.max_rows);
  p.merge_in_kernel = sm90::use_seesaw_merge(kernel == DecodeKernel::kSeesaw, schedule.num_seqs,
                                              schedule.num_m_tiles * schedule.num_parts, gpu::device_sm_count());
  p.kv_multicast = schedule.kv_multicast && sm90::use_kv_multicast(kernel == DecodeKernel::kSeesaw, n,
                                                                    schedule.num_m_tiles, schedule.num_parts,
                                                                    schedule.num_seqs, seesaw_pairs_held());
  p.kv_evict_first = sm90::use_kv_evict_first(static_cast<int>(schedule.num_m_tiles), p.kv_multicast);
  const auto decode = kernel == DecodeKernel::kSplitS ? sm90::mla_decode_sm90_split_s_kernel
                      : kernel == DecodeKernel::kRing ? sm90::mla_decode_sm90_ring_kernel
                                                      : sm90::mla_decode_sm90_seesaw_kernel;
  const int smem_bytes = kernel == DecodeKernel::kRing     ? sm90::kRingSmemBytes
                         : kernel == DecodeKernel::kSeesaw ? sm90::kSeesawSmemBytes
                                                           : sm90::kSmemBytes;
  MLA_CUDA_CHECK(cudaFuncSetAttribute(decode, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes));
  // Programmatic dependent launch: the grid may start launching while the previous kernel in the
  // stream finishes (its griddepcontrol.launch_dependents, or its end); both kernels wait for it
  // (griddepcontrol.wait) before they touch global memory.
  const dim3 grid(static_cast<unsigned>(schedule.num_m_tiles), static_cast<unsigned>(schedule.num_parts));
  const dim3 block(kernel == DecodeKernel::kSeesaw ? sm90::kSeesawThreads : sm90::kThreads);
  const unsigned cluster = p.kv_multicast ? 2 : 0;
  gpu::launch_with_shape(decode, gpu::LaunchShape{grid, block, static_cast<size_t>(smem_bytes), cluster}, stream, p);
  if (!schedule.partitioned || p.merge_in_kernel) return;  // the kernel merged its split sequences itself
  // Fewer than P sequences are split (each holds a partition boundary). When their rows are
  // few, a combine item is a quarter of a row, so that the work spreads over more SMs.
  const int64_t split_rows = std::min(schedule.num_seqs, schedule.num_parts) * p.max_rows;
  const bool quarters = split_rows * 4 <= schedule.combine_ctas;
  const int64_t combine_items = split_rows * (quarters ? 4 : 1);
  const int combine_ctas = static_cast<int>(std::min<int64_t>(combine_items, schedule.combine_ctas));
  gpu::launch_programmatic(quarters ? sm90::mla_decode_sm90_combine_kernel<4> : sm90::mla_decode_sm90_combine_kernel<1>,
                           dim3(static_cast<unsigned>(combine_ctas)), dim3(sm90::kCombineThreads), 0, stream, p);
}

void mla_decode_cuda(const MlaDecodeArgs& args, MlaDecodeOutputs& outputs, cudaStream_t stream) {
  MLA_CHECK(args.query_start.ndim() == 1 && args.query_start.dim(0) >= 2,
            "{}: query_start must be [B + 1] with B >= 1, got {}", kOp, shape_str(args.query_start.shape()));
  MLA_CUDA_CHECK(cudaStreamSynchronize(stream));  // query_start may still be written on stream
  const Tensor starts = args.query_start.to(Device::kCPU);
  const int32_t* qs = starts.data<int32_t>();
  const int64_t b = starts.dim(0) - 1;
  int64_t max_q_len = 1;
  for (int64_t i = 0; i < b; ++i) max_q_len = std::max<int64_t>(max_q_len, qs[i + 1] - qs[i]);

  MlaDecodeSchedule schedule = mla_decode_schedule_create(b, args.q.dim(1), max_q_len);
  mla_decode_schedule_update(schedule, args.seq_lens, stream);
  mla_decode_cuda(args, outputs, schedule, stream);
  MLA_CUDA_CHECK(cudaStreamSynchronize(stream));  // before the schedule's buffers are freed
}

}  // namespace mlaserve::ops
