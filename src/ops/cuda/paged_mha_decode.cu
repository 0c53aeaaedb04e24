// paged_mha_decode on the GPU (contract: ops/paged_mha_decode.h): flash-decoding over the paged
// MHA cache on CUDA cores, dqk = 192 and dv = 128.
//
// Decode attention over per-head K/V is memory-bound (each cached byte takes part in ~q_len
// multiply-adds per head), so the kernel's job is to stream the cache at HBM speed:
//   grid (split, head group, sequence), 4 warps per CTA, warp w attends head 4·group + w over
//   the keys of its context split, all of the sequence's query rows (<= 4 at once) together.
//   Scores: lane j takes key tile + j: 24 independent 16-byte loads of its K row (384 bytes),
//     dotted in fp32 with the query rows held in shared memory (broadcast reads).
//   Online softmax per query row in the log2 domain: the warp's running max, per-lane partial
//     sums (reduced once at the end).
//   Values: lane j owns output channels 4j .. 4j+3; for each of the tile's 32 keys the warp reads
//     the key's 256-byte V row with one 8-byte load per lane (coalesced) and accumulates
//     p_key · v in fp32, p_key broadcast by shuffle.
// Split-K (flash-decoding): when B · ceil(n/4) CTAs cannot fill the GPU several times over, the
// context is cut into S splits (S from B, n and the SM count only, so a captured graph replays
// for any lengths); each split writes an fp32 partial state and its LSE, merged by a second
// kernel (one CTA per query row and head, one thread per channel). A split whose keys are all
// invisible to a query row writes lse = -inf and is skipped by the merge.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/reduce.cuh"
#include "ops/cuda/vec.cuh"
#include "ops/paged_mha_decode.h"

namespace mlaserve::ops {
namespace {

constexpr int kDqk = 192, kDv = 128;
constexpr int kWarps = 4;        // heads per CTA
constexpr int kMaxQ = 4;         // query rows attended together
constexpr int kTile = 32;        // keys per warp iteration (one per lane)
constexpr int kKUnits = kDqk / 8;  // 16-byte units of a K row
constexpr int kMaxSplits = 64;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct DecodeParams {
  const __nv_bfloat16* q;      // [T, n, 192]
  const __nv_bfloat16* cache;  // [num_blocks * block_size, n * 320]
  const int32_t* block_table;  // [B, max_blocks]
  const int32_t* seq_lens;     // [B]
  const int32_t* query_start;  // [B + 1]
  __nv_bfloat16* out;          // [T, n, 128] (one split)
  float* lse;                  // [T, n]      (one split)
  float* part_out;             // [S, T, n, 128] (several splits)
  float* part_lse;             // [S, T, n]
  int64_t row;                 // n * 320
  int32_t n, t, max_blocks, block_size, splits;
  float scale_log2;            // softmax_scale · log2(e)
};

__global__ void __launch_bounds__(kWarps * 32) paged_mha_decode_kernel(DecodeParams p) {
  __shared__ __align__(16) float q_smem[kWarps][kMaxQ][kDqk];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int h = blockIdx.y * kWarps + warp, b = blockIdx.z, split = blockIdx.x;
  if (h >= p.n) return;  // no block-wide synchronisation below
  const int q0 = p.query_start[b], q_len = p.query_start[b + 1] - q0, seq_len = p.seq_lens[b];
  const int per = (((seq_len + p.splits - 1) / p.splits) + kTile - 1) / kTile * kTile;
  const int key_begin = split * per, key_end_split = min(seq_len, key_begin + per);
  const int32_t* table = p.block_table + int64_t{b} * p.max_blocks;
  const __nv_bfloat16* v_base = p.cache + int64_t{p.n} * kDqk + int64_t{h} * kDv + lane * 4;

  for (int g0 = 0; g0 < q_len; g0 += kMaxQ) {
    const int nq = min(kMaxQ, q_len - g0);
    __syncwarp();
    for (int i = 0; i < nq; ++i) {
      const __nv_bfloat16* src = p.q + (int64_t{q0 + g0 + i} * p.n + h) * kDqk;
      for (int c = lane; c < kDqk; c += 32) q_smem[warp][i][c] = __bfloat162float(src[c]);
    }
    __syncwarp();
    // Query g0 + i sees keys up to seq_len - q_len + g0 + i; none of this group sees further.
    const int last_visible = seq_len - q_len + g0;  // + i
    const int key_end = min(key_end_split, last_visible + nq);
    float m[kMaxQ], l[kMaxQ], acc[kMaxQ][4];
#pragma unroll
    for (int i = 0; i < kMaxQ; ++i) {
      m[i] = -INFINITY;
      l[i] = 0.0f;
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[i][c] = 0.0f;
    }
    for (int tile = key_begin; tile < key_end; tile += kTile) {
      const int key = tile + lane;
      int64_t slot = 0;
      float s[kMaxQ];
#pragma unroll
      for (int i = 0; i < kMaxQ; ++i) s[i] = -INFINITY;
      if (key < key_end) {
        slot = int64_t{table[key / p.block_size]} * p.block_size + key % p.block_size;
        const uint4* k_row = reinterpret_cast<const uint4*>(p.cache + slot * p.row + int64_t{h} * kDqk);
        uint4 k_units[kKUnits];
#pragma unroll
        for (int u = 0; u < kKUnits; ++u) k_units[u] = __ldg(k_row + u);
        float dot[kMaxQ] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int u = 0; u < kKUnits; ++u) {
          float kf[8];
          gpu::unpack_bf16x8(k_units[u], kf);
#pragma unroll
          for (int i = 0; i < kMaxQ; ++i) {
            if (i < nq) {
              const float4 qa = *reinterpret_cast<const float4*>(&q_smem[warp][i][u * 8]);
              const float4 qb = *reinterpret_cast<const float4*>(&q_smem[warp][i][u * 8 + 4]);
              dot[i] += qa.x * kf[0] + qa.y * kf[1] + qa.z * kf[2] + qa.w * kf[3] + qb.x * kf[4] + qb.y * kf[5] +
                        qb.z * kf[6] + qb.w * kf[7];
            }
          }
        }
#pragma unroll
        for (int i = 0; i < kMaxQ; ++i) {
          if (i < nq && key <= last_visible + i) s[i] = dot[i] * p.scale_log2;
        }
      }
      float prob[kMaxQ];
#pragma unroll
      for (int i = 0; i < kMaxQ; ++i) {
        prob[i] = 0.0f;
        if (i >= nq) continue;  // uniform across the warp
        const float m_new = fmaxf(m[i], gpu::warp_max(s[i]));
        const float alpha = m_new == -INFINITY ? 1.0f : exp2f(m[i] - m_new);
        prob[i] = s[i] == -INFINITY ? 0.0f : exp2f(s[i] - m_new);
        l[i] = l[i] * alpha + prob[i];
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[i][c] *= alpha;
        m[i] = m_new;
      }
      const int keys = min(kTile, key_end - tile);
#pragma unroll 8
      for (int j = 0; j < keys; ++j) {
        const int64_t slot_j = __shfl_sync(0xffffffffu, slot, j);
        const uint2 raw = __ldg(reinterpret_cast<const uint2*>(v_base + slot_j * p.row));
        const float2 v01 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
        const float2 v23 = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
#pragma unroll
        for (int i = 0; i < kMaxQ; ++i) {
          if (i >= nq) continue;
          const float pj = __shfl_sync(0xffffffffu, prob[i], j);
          acc[i][0] += pj * v01.x;
          acc[i][1] += pj * v01.y;
          acc[i][2] += pj * v23.x;
          acc[i][3] += pj * v23.y;
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kMaxQ; ++i) {
      if (i >= nq) break;
      const float sum = gpu::warp_sum(l[i]);
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
      const float lse = sum > 0.0f ? (m[i] + log2f(sum)) * kLn2 : -INFINITY;
      const int64_t r = int64_t{q0 + g0 + i} * p.n + h;  // (row, head)
      if (p.splits == 1) {
        __nv_bfloat162* o = reinterpret_cast<__nv_bfloat162*>(p.out + r * kDv + lane * 4);
        o[0] = __floats2bfloat162_rn(acc[i][0] * inv, acc[i][1] * inv);
        o[1] = __floats2bfloat162_rn(acc[i][2] * inv, acc[i][3] * inv);
        if (lane == 0) p.lse[r] = lse;
      } else {
        const int64_t pr = int64_t{split} * p.t * p.n + r;
        *reinterpret_cast<float4*>(p.part_out + pr * kDv + lane * 4) =
            make_float4(acc[i][0] * inv, acc[i][1] * inv, acc[i][2] * inv, acc[i][3] * inv);
        if (lane == 0) p.part_lse[pr] = lse;
      }
    }
  }
}

// One CTA per (query row, head), one thread per output channel: the LSE merge of the splits.
__global__ void __launch_bounds__(kDv) merge_splits_kernel(DecodeParams p) {
  const int64_t r = blockIdx.x;  // row * n + head
  const int64_t stride = int64_t{p.t} * p.n;
  float m = -INFINITY;
  for (int s = 0; s < p.splits; ++s) m = fmaxf(m, p.part_lse[s * stride + r]);
  float sum = 0.0f, acc = 0.0f;
  if (m != -INFINITY) {
    for (int s = 0; s < p.splits; ++s) {
      const float lse = p.part_lse[s * stride + r];
      if (lse == -INFINITY) continue;  // that split's out is not read
      const float w = __expf(lse - m);
      sum += w;
      acc += w * p.part_out[(s * stride + r) * kDv + threadIdx.x];
    }
  }
  p.out[r * kDv + threadIdx.x] = __float2bfloat16_rn(sum > 0.0f ? acc / sum : 0.0f);
  if (threadIdx.x == 0) p.lse[r] = sum > 0.0f ? m + logf(sum) : -INFINITY;
}

// Splits so that about 8 CTAs (32 warps) per SM are in flight, at most kMaxSplits.
int num_splits(int64_t batch, int64_t head_groups) {
  const int sms = gpu::device_sm_count();
  const int64_t ctas = batch * head_groups, target = int64_t{8} * sms;
  return static_cast<int>(std::clamp<int64_t>((target + ctas - 1) / ctas, 1, kMaxSplits));
}

}  // namespace

void paged_mha_decode_cuda(const PagedMhaDecodeArgs& a, AttentionState& out, cudaStream_t stream) {
  constexpr std::string_view kOp = "paged_mha_decode_cuda";
  gpu::check_dtype(kOp, "q", a.q, DType::kBF16);
  gpu::check_dtype(kOp, "cache", a.cache, DType::kBF16);
  gpu::check_dtype(kOp, "out", out.out, DType::kBF16);
  gpu::check_dtype(kOp, "lse", out.lse, DType::kF32);
  for (const Tensor* t : {&a.block_table, &a.seq_lens, &a.query_start}) {
    gpu::check_dtype(kOp, "block_table/seq_lens/query_start", *t, DType::kI32);
  }
  MLA_CHECK(a.q.ndim() == 3 && a.q.dim(2) == kDqk && a.cache.ndim() == 3 &&
                a.cache.dim(2) == a.q.dim(1) * (kDqk + kDv),
            "{}: q {} must be [T, n, {}] and cache {} [num_blocks, block_size, n * {}]", kOp, shape_str(a.q.shape()),
            kDqk, shape_str(a.cache.shape()), kDqk + kDv);
  const int64_t t = a.q.dim(0), n = a.q.dim(1);
  gpu::check_shape(kOp, "out", out.out, {t, n, kDv});
  gpu::check_shape(kOp, "lse", out.lse, {t, n});
  MLA_CHECK(a.block_table.ndim() == 2, "{}: block_table {} must be [B, max_blocks]", kOp,
            shape_str(a.block_table.shape()));
  const int64_t b = a.block_table.dim(0);
  gpu::check_shape(kOp, "seq_lens", a.seq_lens, {b});
  gpu::check_shape(kOp, "query_start", a.query_start, {b + 1});
  MLA_CHECK(std::isfinite(a.softmax_scale) && a.softmax_scale > 0.0f,
            "{}: softmax_scale must be positive and finite, got {}", kOp, a.softmax_scale);
  MLA_CHECK(gpu::aligned16(a.q) && gpu::aligned16(a.cache) && gpu::aligned16(out.out),
            "{}: q, cache and out must be 16-byte aligned", kOp);
  MLA_CHECK(b <= 65535 && t * n < (int64_t{1} << 31), "{}: {} sequences, {} rows: outside the grid's range", kOp, b, t);
  if (t == 0 || b == 0) return;

  DecodeParams p{};
  p.q = gpu::ptr<const __nv_bfloat16>(a.q);
  p.cache = gpu::ptr<const __nv_bfloat16>(a.cache);
  p.block_table = gpu::ptr<const int32_t>(a.block_table);
  p.seq_lens = gpu::ptr<const int32_t>(a.seq_lens);
  p.query_start = gpu::ptr<const int32_t>(a.query_start);
  p.out = gpu::ptr<__nv_bfloat16>(out.out);
  p.lse = gpu::ptr<float>(out.lse);
  p.row = a.cache.dim(2);
  p.n = static_cast<int32_t>(n);
  p.t = static_cast<int32_t>(t);
  p.max_blocks = static_cast<int32_t>(a.block_table.dim(1));
  p.block_size = static_cast<int32_t>(a.cache.dim(1));
  p.scale_log2 = a.softmax_scale * kLog2e;
  const int64_t groups = (n + kWarps - 1) / kWarps;
  p.splits = num_splits(b, groups);
  Tensor part_out, part_lse;
  if (p.splits > 1) {
    part_out = Tensor::empty({p.splits, t, n, kDv}, DType::kF32, Device::kCUDA);
    part_lse = Tensor::empty({p.splits, t, n}, DType::kF32, Device::kCUDA);
    p.part_out = gpu::ptr<float>(part_out);
    p.part_lse = gpu::ptr<float>(part_lse);
  }
  const dim3 grid(static_cast<unsigned>(p.splits), static_cast<unsigned>(groups), static_cast<unsigned>(b));
  paged_mha_decode_kernel<<<grid, kWarps * 32, 0, stream>>>(p);
  MLA_CUDA_CHECK_LAUNCH();
  if (p.splits > 1) {
    merge_splits_kernel<<<static_cast<unsigned>(t * n), kDv, 0, stream>>>(p);
    MLA_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace mlaserve::ops
