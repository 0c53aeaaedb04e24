// Building blocks of the tensor-core GEMVs: the routed experts' grouped GEMV (moe_experts_gemv.cuh,
// whose note explains the design), the dense block-FP8 one (linear_fp8_gemv_mma.cuh) and the dense
// bf16 one (linear_gemv_mma.cuh). Device code only; each kernel is in its own header.
//
// All stream weight rows straight from global memory into swapped-operand mma.sync fragments: A
// (16 x k) = 16 weight rows, B (k x 8) = up to 8 activation rows staged in shared memory, D (16 x 8)
// fp32. All deal the 128-byte pieces of a CTA's run of 16-row tiles to kGemvMmaWarps warps round
// robin (GemvMmaPos), each warp keeping a ring of pieces in flight in registers; the FP8 ones
// quantise their activation rows into shared memory with the quantiser's exact arithmetic
// (quantize_rows_e4m3), the bf16 ones copy them (stage_rows_bf16, or stage_rows_bf16_async). All
// three share a CTA's run (GemvMmaRun) and the ring's first loads (gemv_mma_fill_ring); the two
// dense ones share the piece load (load_weight_piece). The bf16 one's stream and end are
// gemv_mma_stream and gemv_mma_store_tiles; the FP8 dense and the experts' GEMVs still spell out
// the same steps inline: moving them onto these helpers (or the end onto a shared in-order warp
// sum) changed their cubins, and the FP8 dense / experts' kernels so moved measured 2-4% / 3%
// slower on the H200 (2026-11-29), so the copies stay until a helper gives ptxas the same code.
// So do their copies of rows quantised before them (linear_fp8_gemv_mma.cuh's stage_fp8_rows,
// moe_experts_gemv.cuh's stage_codes_async): one helper for both measured +1 to +3% on the FP8
// decode steps at 2-8 tokens (H200, 2026-12-03, bench/NOTES-engine.md).
//
// Lane (g, t) = (lane / 4, lane % 4) holds bytes [16t, 16t + 16) of a 64-byte k-block of weight
// rows g and g + 8 and of activation row g; mma_k_block runs the two m16n8k32 e4m3 (or m16n8k16
// bf16) steps over it. A and B lanes with the same t use the same bytes for the same k-slots, so
// the k order inside an instruction is permuted but the sum is the dot product. D's c0, c1 are
// (weight row g; activation rows 2t, 2t + 1), c2, c3 the same for row g + 8.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/fp8_quant.cuh"
#include "ops/cuda/moe_grouped_gemm_fp8_sm89.cuh"  // sm89::mma_16832_e4m3, sm80::mma_16816
#include "ops/cuda/sm80_ptx.cuh"                    // cp_async_16
#include "ops/cuda/vec.cuh"

namespace mlaserve::ops::gpu {

inline constexpr int kGemvMmaWarps = 8;               // warps per CTA, dealt the pieces of its run
inline constexpr int kGemvMmaThreads = 32 * kGemvMmaWarps;
inline constexpr int kGemvMmaRows = 8;                // activation rows at most: the mma's N
inline constexpr int kGemvMmaTileRows = 16;           // weight rows a tile of the dense GEMVs: the mma's M
inline constexpr int kGemvMmaUnitBytes = 128;         // bytes of a weight row per piece
inline constexpr int kGemvMmaActPad = 64;             // bytes after each staged activation row
inline constexpr int kGemvMmaPartialBytes = kGemvMmaWarps * 32 * 16;  // a tile's partial sums (float4 a lane)
inline constexpr unsigned kFullMask = 0xffffffffu;

// CTAs an SM the registers must allow for a ring of `depth` pieces (16 registers a piece):
// depth 2 -> 3 (<= 85 registers a thread), 4 -> 2 (<= 128), 8 -> 1.
inline constexpr int gemv_mma_min_ctas_per_sm(int depth) { return depth <= 2 ? 3 : depth <= 4 ? 2 : 1; }

// Word i (0 .. 3) of a 16-byte vector.
__device__ __forceinline__ uint32_t vec_word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// The two mma steps of one 64-byte k-block (the note at the top): w_lo, w_hi this lane's 16 bytes
// of weight rows g and g + 8, act those of activation row g.
template <bool kFp8>
__device__ __forceinline__ void mma_k_block(float (&d)[4], const uint4& w_lo, const uint4& w_hi, const uint4& act) {
#pragma unroll
  for (int s = 0; s < 2; ++s) {
    const uint32_t a[4] = {vec_word(w_lo, 2 * s), vec_word(w_hi, 2 * s), vec_word(w_lo, 2 * s + 1),
                           vec_word(w_hi, 2 * s + 1)};
    if constexpr (kFp8) {
      sm89::mma_16832_e4m3(d, a, vec_word(act, 2 * s), vec_word(act, 2 * s + 1));
    } else {
      sm80::mma_16816(d, a, vec_word(act, 2 * s), vec_word(act, 2 * s + 1));
    }
  }
}

// Rows [row0, row0 + n) of a ([rows, k] bf16) quantised to e4m3 per 128-wide group into shared
// memory: codes of row j at codes + j · code_stride, scales[j · groups + group], groups = k / 128
// (ceil with kPartialGroups: the last group's codes past k are not written, and its amax covers
// only its k % 128 channels, as quantize_activations_fp8_cuda; k a multiple of 8 then).
// kTokenRows: the j-th row is instead a's row lane_token of the warp's lane j (j < n <= 32; row0
// unused): the experts' GEMV on indexed token rows. Every
// thread of the CTA (kGemvMmaThreads) calls it; half-warps take the (row, group) tasks, 8 values a
// lane, kBatch tasks a half-warp with their loads issued together (one trip to L2 per 16 kBatch
// tasks). kBatch is the caller's: the kernels hold their ring of weights (16 registers a piece)
// across this, issued before it, and ptxas has six scoreboards for all loads in flight. With two
// loads a trip in the experts' GEMV it put the second on the ring's scoreboard (cuobjdump -sass:
// the control bits' wait mask), so every CTA waited for its ring to land before quantising; one
// load a trip gets a scoreboard of its own (V2-Lite's FP8 decode step at batch 1: 2.5-4% faster).
// The dense GEMV keeps two: there one load a trip lost more to the extra trips at T >= 2 than it
// won (bench/NOTES-engine.md, forty-seventh session).
// The arithmetic is fp8_quant.cuh's: amax over the group by shuffles, max'ed with the floor, scale
// and quotients by IEEE division, RNE saturating e4m3.
template <int kBatch, bool kPartialGroups, bool kTokenRows = false>
__device__ __forceinline__ void quantize_rows_e4m3(const __nv_bfloat16* a, int k, float amax_floor, bool ue8m0,
                                                   int row0, int n, float* scales, uint8_t* codes, int code_stride,
                                                   int lane_token = 0) {
  constexpr int kStride = 2 * kGemvMmaWarps;  // tasks apart within a batch
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int half = lane / 16, l16 = lane % 16;
  const int groups = kPartialGroups ? (k + 127) / 128 : k / 128, tasks = n * groups;
  for (int base = 2 * warp + half; base - half < tasks; base += kStride * kBatch) {  // warp-uniform trip count
    uint4 raw[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int task = base + b * kStride, j = task / groups, q = task - j * groups;
      const bool in_k = !kPartialGroups || q * 128 + 8 * l16 < k;
      const int row = kTokenRows ? __shfl_sync(kFullMask, lane_token, min(j, 31)) : row0 + j;
      raw[b] = task < tasks && in_k
                   ? __ldcg(reinterpret_cast<const uint4*>(a + int64_t{row} * k + q * 128 + 8 * l16))
                   : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int task = base + b * kStride, j = task / groups, q = task - j * groups;
      float v[8];
      unpack_bf16x8(raw[b], v);
      const float scale = group_act_scale<16, 8>(v, amax_floor, ue8m0);  // the half-warp's group
      const uint2 q8 = quantize_e4m3x8(v, scale);
      const bool in_k = !kPartialGroups || q * 128 + 8 * l16 < k;
      if (task < tasks) {
        if (in_k) *reinterpret_cast<uint2*>(codes + j * code_stride + q * 128 + 8 * l16) = q8;
        if (l16 == 0) scales[j * groups + q] = scale;
      }
    }
  }
}

// Rows [row0, row0 + n) of a ([rows, k] bf16, k a multiple of 8) copied into shared memory, row j
// at acts + j · stride. Every thread of the CTA calls it; 16-byte chunks, kBatch loads a thread
// issued together (V2-Lite's 8 rows of H: 2048 chunks, one batch of 8 a thread).
__device__ __forceinline__ void stage_rows_bf16(const __nv_bfloat16* a, int k, int row0, int n, uint8_t* acts,
                                                int stride) {
  constexpr int kBatch = 8;
  const int chunks = k / 8, total = n * chunks;  // 16-byte chunks: a row, the pass
  for (int base = static_cast<int>(threadIdx.x); base < total; base += kGemvMmaThreads * kBatch) {
    uint4 v[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int i = base + b * kGemvMmaThreads, j = i / chunks, c = i - j * chunks;
      v[b] = i < total ? __ldcg(reinterpret_cast<const uint4*>(a + int64_t{row0 + j} * k) + c) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int i = base + b * kGemvMmaThreads, j = i / chunks, c = i - j * chunks;
      if (i < total) *reinterpret_cast<uint4*>(acts + j * stride + 16 * c) = v[b];
    }
  }
}

// The same copy of rows [0, n) through cp.async (16 bytes global -> shared through L2, no
// registers): every chunk of the thread's share in flight at once (V3's 8 rows of K = 7168: 28 a
// thread, where stage_rows_bf16 would take four trips to L2), then waited for; the caller's
// __syncthreads makes the rows visible to the CTA. kTokenRows: the j-th row is a's row lane_token
// of the warp's lane j (j < n <= 32), as quantize_rows_e4m3's.
template <bool kTokenRows = false>
__device__ __forceinline__ void stage_rows_bf16_async(const __nv_bfloat16* a, int k, int n, uint8_t* acts,
                                                      int stride, int lane_token = 0) {
  const int chunks = k / 8;  // 16-byte chunks a row
  for (int j = 0; j < n; ++j) {
    const int row = kTokenRows ? __shfl_sync(kFullMask, lane_token, j) : j;
    const uint4* src = reinterpret_cast<const uint4*>(a + int64_t{row} * k);
    for (int c = static_cast<int>(threadIdx.x); c < chunks; c += kGemvMmaThreads) {
      sm80::cp_async_16(sm80::smem_u32(acts + j * stride + 16 * c), src + c, true);
    }
  }
  sm80::cp_async_commit();
  sm80::cp_async_wait<0>();
}

// A warp's place in its stream of pieces: local tile and unit (128-byte piece of a weight row).
// Piece i of the run is (i / units, i % units); a warp takes i = warp, warp + kGemvMmaWarps, ...;
// advancing by kGemvMmaWarps pieces may cross several tiles when units < kGemvMmaWarps.
struct GemvMmaPos {
  int tile, unit;
  __device__ __forceinline__ void normalise(int units) {
    while (unit >= units) {  // warp-uniform
      unit -= units;
      ++tile;
    }
  }
  __device__ __forceinline__ void advance(int units) {
    unit += kGemvMmaWarps;
    normalise(units);
  }
};

// A warp's place when it takes whole tiles instead (the experts' down GEMV on short rows,
// moe_experts_gemv.cuh): tiles warp, warp + kGemvMmaWarps, .., each one's pieces in order, from
// {warp, 0}; pieces(warp, n_tiles, units) of them in a run of n_tiles tiles. The same interface as
// GemvMmaPos.
struct GemvMmaTilePos {
  int tile, unit;
  __device__ __forceinline__ static int pieces(int warp, int n_tiles, int units) {
    return (n_tiles > warp ? (n_tiles - 1 - warp) / kGemvMmaWarps + 1 : 0) * units;
  }
  __device__ __forceinline__ void advance(int units) {
    if (++unit == units) {  // warp-uniform
      unit = 0;
      tile += kGemvMmaWarps;
    }
  }
};

// A CTA's run and this warp's share of it: CTA x of gridDim.x owns tiles [tile0, tile0 + n_tiles)
// = [x·tiles / C, (x + 1)·tiles / C) (runs even to one tile), n_tiles · units pieces, of which the
// warp takes my_pieces (GemvMmaPos).
struct GemvMmaRun {
  int tile0, n_tiles, my_pieces;
  __device__ __forceinline__ GemvMmaRun(int tiles, int units) {
    const int warp = static_cast<int>(threadIdx.x) / 32;
    tile0 = static_cast<int>(int64_t{blockIdx.x} * tiles / gridDim.x);
    n_tiles = static_cast<int>(int64_t{blockIdx.x + 1} * tiles / gridDim.x) - tile0;
    const int pieces = n_tiles * units;
    my_pieces = pieces > warp ? (pieces - 1 - warp) / kGemvMmaWarps + 1 : 0;
  }
};

// The ring's first pieces: load(s, load_at) into slots s < min(kDepth, my_pieces), load_at
// advancing past each (from the warp's first piece: GemvMmaPos{0, warp} normalised, or
// GemvMmaTilePos{warp, 0}).
template <int kDepth, typename Pos, typename Load>
__device__ __forceinline__ void gemv_mma_fill_ring(int my_pieces, int units, Pos& load_at, Load&& load) {
#pragma unroll
  for (int s = 0; s < kDepth; ++s) {
    if (s < my_pieces) {
      load(s, load_at);
      load_at.advance(units);
    }
  }
}

// ---- the dense GEMVs (linear_fp8_gemv_mma.cuh, linear_gemv_mma.cuh) ---------------------------

// Lane (g, t)'s 16 bytes of k-blocks 0 and 1 of piece `unit` (bytes [128 unit, 128 unit + 128))
// of weight rows row_g and row_g + 8 of w ([n rows, row_bytes bytes]): piece[kb][0] row row_g,
// piece[kb][1] row row_g + 8. Rows past N load row N - 1 (never stored). A 16-byte vector lies
// wholly inside or past the row (row_bytes % 16 == 0); past it, zeros and no load. Streaming
// loads: the weight is read once. (t comes from the caller: recomputing it here changed the FP8
// kernel's register allocation.)
__device__ __forceinline__ void load_weight_piece(uint4 (&piece)[2][2], const uint8_t* w, int row_bytes, int n,
                                                  int row_g, int unit, int t) {
  const int64_t lo = min(row_g, n - 1), hi = min(row_g + 8, n - 1);
  const int64_t col = int64_t{unit} * kGemvMmaUnitBytes + 16 * t;
#pragma unroll
  for (int kb = 0; kb < 2; ++kb) {
    const bool inside = unit * kGemvMmaUnitBytes + kb * 64 + 16 * t < row_bytes;
    piece[kb][0] = inside ? __ldcs(reinterpret_cast<const uint4*>(w + lo * row_bytes + col + kb * 64))
                          : make_uint4(0, 0, 0, 0);
    piece[kb][1] = inside ? __ldcs(reinterpret_cast<const uint4*>(w + hi * row_bytes + col + kb * 64))
                          : make_uint4(0, 0, 0, 0);
  }
}

// A warp's stream over its my_pieces pieces (GemvMmaPos from `start`), kDepth of them in flight:
// the first kDepth were loaded by the caller (load(s, at) into ring slot s, at advancing from
// start to load_at); each step consumes slot s (consume(s, unit, acc): the mma steps into acc, this
// lane's D of the current tile) and refills it with the piece kDepth further on. When the stream
// moves on to another tile, acc goes to store_partial(tile, float4) (zeros for tiles the warp has
// no piece of) and restarts from zero; at the end every tile up to n_tiles has been stored once (a
// warp with no piece stores zeros for all).
template <int kDepth, typename Load, typename Consume, typename StorePartial>
__device__ __forceinline__ void gemv_mma_stream(int my_pieces, int units, int n_tiles, GemvMmaPos start,
                                                GemvMmaPos load_at, Load&& load, Consume&& consume,
                                                StorePartial&& store_partial) {
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // D: (row g; tokens 2t, 2t + 1), (row g + 8; the same)
  int cur_tile = 0;                         // the tile acc belongs to
  GemvMmaPos use_at = start;
  for (int j0 = 0; j0 < my_pieces; j0 += kDepth) {
#pragma unroll
    for (int s = 0; s < kDepth; ++s) {
      if (j0 + s >= my_pieces) break;  // warp-uniform
      if (use_at.tile != cur_tile) {   // warp-uniform: acc is complete for cur_tile
        store_partial(cur_tile, make_float4(acc[0], acc[1], acc[2], acc[3]));
        for (int x = cur_tile + 1; x < use_at.tile; ++x) store_partial(x, make_float4(0.0f, 0.0f, 0.0f, 0.0f));
        cur_tile = use_at.tile;
        acc[0] = acc[1] = acc[2] = acc[3] = 0.0f;
      }
      consume(s, use_at.unit, acc);
      use_at.advance(units);
      if (j0 + s + kDepth < my_pieces) {
        load(s, load_at);
        load_at.advance(units);
      }
    }
  }
  store_partial(cur_tile, make_float4(acc[0], acc[1], acc[2], acc[3]));
  for (int x = cur_tile + 1; x < n_tiles; ++x) store_partial(x, make_float4(0.0f, 0.0f, 0.0f, 0.0f));
}

// The end of a dense GEMV's CTA, after the __syncthreads that follows the last store_partial: the
// sum over the warps (in warp order: deterministic for a given grid) of the partial sums
// ([n_tiles][kGemvMmaWarps][32 lanes] float4) of tiles [tile0, tile0 + n_tiles). Lane (g, t) of
// warp w writes rows g and g + 8 of tiles w, w + 8, ... for tokens 2t and 2t + 1 into out [tokens,
// n]: tokens past `tokens` and rows past n are not written, the rest exactly once, bf16 rounded
// once or f32.
template <typename OutT>
__device__ __forceinline__ void gemv_mma_store_tiles(const float4* partial, int tile0, int n_tiles, OutT* out,
                                                     int tokens, int n) {
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, t = lane % 4;
  for (int tile = warp; tile < n_tiles; tile += kGemvMmaWarps) {
    float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int w = 0; w < kGemvMmaWarps; ++w) {
      const float4 v = partial[(tile * kGemvMmaWarps + w) * 32 + lane];
      sum[0] += v.x;
      sum[1] += v.y;
      sum[2] += v.z;
      sum[3] += v.w;
    }
    const int row = (tile0 + tile) * kGemvMmaTileRows + g;
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const int token = 2 * t + c;
      if (token >= tokens) continue;
      OutT* out_row = out + int64_t{token} * n;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if (row + 8 * h >= n) continue;
        if constexpr (sizeof(OutT) == 2) {
          out_row[row + 8 * h] = __float2bfloat16_rn(sum[2 * h + c]);
        } else {
          out_row[row + 8 * h] = sum[2 * h + c];
        }
      }
    }
  }
}

}  // namespace mlaserve::ops::gpu
