// MHA-form attention for MLA prefill on Hopper (sm_90a): device code. Contract: ops/mha_attention.h.
//
// Symbols: Tq queries, Tk keys, n heads; per head q and k rows are 192 bf16 ([nope 128 | rope
// 64]), v rows 128 bf16. One call is one sequence; the causal mask is aligned bottom-right
// (query i sees keys 0 .. Tk - Tq + i), so a chunk of new tokens after cached context is one call.
//
// Why this shape. Prefill attention is bound by the tensor cores: 2 * (192 + 128) flops per
// (query, key, head) against 2 * 320 bytes of K/V per (key, head), read once per 128 queries.
// This is the FlashAttention-3 forward: flash attention (online softmax in fp32, scores never
// leave the SM) with warp specialisation, TMA loads and wgmma, at FA3's tile for these head dims.
//
// One CTA = one head x one block of kBlockM = 128 query rows, 3 warpgroups (384 threads):
//   warpgroup 0, the producer: setmaxnreg down to 24 registers; one thread issues every copy
//     as TMA bulk tensor loads (3-D maps [T][n][dim], 128-byte swizzle, rows past T read as 0):
//     the Q tile once, then K and V tiles of kBlockN = 128 keys, last key block first, into a
//     2-stage ring of K and V buffers, each buffer with a "full" mbarrier (TMA bytes) and an
//     "empty" one (one arrival per consumer warp).
//   warpgroups 1 and 2, the consumers: setmaxnreg up to 240; each owns 64 query rows (one wgmma
//     M tile) and all 128 keys of a tile, so row maxima and sums never leave the warpgroup.
//       S[64 x 128] = Q K^T: 12 wgmma m64n128k16, both operands from shared memory (K-major);
//       O[64 x 128] += P V: 8 wgmma m64n128k16, P from registers (the S accumulator layout is
//       the A-fragment layout, so P is S rounded to bf16 in place), V from shared memory
//       (MN-major: V tiles are stored as loaded, keys x channels).
//     Intra-warpgroup overlap: for key block j the warpgroup issues S_j = Q K_j^T and then
//     O += P_{j-1} V_{j-1}, waits for S_j only, and runs the softmax of S_j (mask, row max,
//     exp2, row sum) while P V runs on the tensor cores; then it waits for P V and rounds S_j
//     to P_j. O is brought to S_j's row maxima (times exp2(m_old - m_new)) in the next step,
//     after S_{j+1} is issued and before P_j V_j is: that FMUL pass also runs under a GEMM.
//     With two consumer warpgroups, one's softmax also fills the other's tensor-core gaps.
// Shared memory (1 KB-aligned base): Q [3 column blocks][128 rows][128 B] 48 KB | K stages
// 2 x 48 KB | V stages 2 x [2 column blocks][128 rows][128 B] 64 KB | 9 mbarriers: 208 KB, one
// CTA per SM. A column block holds 64 channels of every row; 16-byte chunk c of row r sits at
// chunk c ^ (r % 8) (the TMA's 128-byte swizzle, which is wgmma's canonical layout).
// Output: the bf16 rows, or with an FP8 output (out_q, AttentionFp8Output) their e4m3 codes,
// staged in each warpgroup's rows of Q's first column blocks for 16-byte stores; lse straight
// from the registers.
//
// Masking: key blocks run from the last to the first, so the only tiles that need a mask (the
// causal diagonal, at most 2 tiles of a 128-row block, and the tile holding key Tk - 1, which
// may run past Tk) come first; later tiles skip the mask code. A row whose keys in a tile are
// all masked keeps m = -inf, which is read as 0 when exponentiating, so nothing becomes NaN.
// Scores stay unscaled until the exp: p = exp2(s * scale * log2(e) - m), one FFMA per score.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>

#include <cstdint>
#include <utility>

#include <cute/arch/mma_sm90_gmma.hpp>

#include "ops/cuda/fp8_quant.cuh"
#include "ops/cuda/mha_attention_sm90_heuristics.h"
#include "ops/cuda/mha_attention_sm90_params.h"
#include "ops/cuda/sm90_ptx.cuh"

namespace mlaserve::ops::sm90::mha {

inline constexpr int kHeadDimQk = 192;
inline constexpr int kHeadDimV = 128;
inline constexpr int kThreads = 384;                         // producer + 2 consumer warpgroups
inline constexpr int kConsumerWarps = 8;                     // arrivals on an "empty" barrier
inline constexpr int kProducerRegisters = 24;                // setmaxnreg of the producer warpgroup
inline constexpr int kConsumerRegisters = 240;               // and of the consumers
inline constexpr int kBoxBytes = kBlockN * 128;              // one TMA box = one column block, 16 KB
inline constexpr int kQBytes = kHeadDimQk / 64 * kBoxBytes;  // 48 KB
inline constexpr int kKStageBytes = kHeadDimQk / 64 * kBoxBytes;  // 48 KB
inline constexpr int kVStageBytes = kHeadDimV / 64 * kBoxBytes;   // 32 KB
inline constexpr int kEmptyThreads = 256;                    // mha_empty_sm90_kernel

// Shared-memory map (byte offsets from a 1 KB-aligned base).
struct Smem {
  static constexpr int kQ = 0;
  static constexpr int kK = kQ + kQBytes;                    // kStages K tiles
  static constexpr int kV = kK + kStages * kKStageBytes;     // kStages V tiles
  static constexpr int kBarriers = kV + kStages * kVStageBytes;
  // mbarriers: Q full, then per stage K full, K empty, V full, V empty
  static constexpr int kBytes = kBarriers + (1 + 4 * kStages) * 8;
};
inline constexpr int kSmemBytes = Smem::kBytes + 1024;       // + room to align the base
static_assert(kBlockM == 128 && kBlockN == 128, "two consumer warpgroups of 64 rows; S is a m64n128 wgmma");
static_assert(kBlockN * 128 == 16384, "a TMA box is [kBlockN rows][64 bf16]");
static_assert(kSmemBytes <= 227 * 1024, "over the sm_90 shared-memory limit per CTA");
static_assert(kProducerRegisters * 128 + kConsumerRegisters * 256 <= 65536, "register file of one SM");

// ---- PTX (ops/cuda/sm90_ptx.cuh), and what this kernel does its own way -------------------

// Spins until the phase with this parity has completed (a fresh barrier's parity-1 phase counts
// as completed, which is how the producer's first pass over the ring starts). This kernel's own
// form, a C++ loop around try_wait (ptx::mbarrier_wait loops in PTX), kept as it was measured.
__device__ __forceinline__ void mbarrier_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n"
        "}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (done == 0);
}

// One [kBlockN rows x 64 channels] box of a [T][n][dim] bf16 tensor map at (channel, head, row).
__device__ __forceinline__ void tma_load_box(uint32_t dst, const CUtensorMap* map, int channel, int head, int row,
                                             uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], "
      "[%5];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(channel), "r"(head), "r"(row), "r"(bar)
      : "memory");
}

// Starts the copy of rows row .. row + 127 of one head, every channel (dim / 64 boxes).
template <int kDim>
__device__ __forceinline__ void tma_load_tile(uint32_t dst, const CUtensorMap* map, int head, int row, uint32_t bar) {
  ptx::mbarrier_arrive_expect_bytes(bar, kDim / 64 * kBoxBytes);
#pragma unroll
  for (int cb = 0; cb < kDim / 64; ++cb) tma_load_box(dst + cb * kBoxBytes, map, cb * 64, head, row, bar);
}

// wgmma descriptors, 128-byte swizzle. K-major operands (Q, K): leading byte offset unused
// (16), stride byte offset 1024 = between 8-row groups. MN-major V: leading byte offset =
// between 64-channel column blocks (kBoxBytes), stride byte offset 1024 = between 8-key groups.

namespace gmma = cute::SM90::GMMA;

template <size_t... I>
__device__ __forceinline__ void wgmma_qk(uint64_t a, uint64_t b, float (&d)[64], gmma::ScaleOut scale,
                                         std::index_sequence<I...>) {
  gmma::MMA_64x128x16_F32BF16BF16_SS<gmma::Major::K, gmma::Major::K>::fma(a, b, d[I]..., scale);
}
template <size_t... I>
__device__ __forceinline__ void wgmma_pv(const uint32_t* a, uint64_t b, float (&d)[64], std::index_sequence<I...>) {
  gmma::MMA_64x128x16_F32BF16BF16_RS<gmma::Major::K, gmma::Major::MN>::fma(a[0], a[1], a[2], a[3], b, d[I]...,
                                                                            gmma::ScaleOut::One);
}

// Issues S[64 x 128] = Q[64 x 192] K[128 x 192]^T as one wgmma group. The descriptors point at
// channel 0; k-step ks moves 32 bytes inside a 128-byte swizzle row, and to the next column
// block every 4 steps.
__device__ __forceinline__ void issue_qk(uint64_t q_desc, uint64_t k_desc, float (&s)[64]) {
  ptx::fence_registers(s);
  ptx::wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < kHeadDimQk / 16; ++ks) {
    const uint64_t step = static_cast<uint64_t>(((ks / 4) * kBoxBytes + (ks % 4) * 32) >> 4);
    wgmma_qk(q_desc + step, k_desc + step, s, ks == 0 ? gmma::ScaleOut::Zero : gmma::ScaleOut::One,
             std::make_index_sequence<64>{});
  }
  ptx::wgmma_commit();
}

// Issues O[64 x 128] += P[64 x 128] V[128 x 128] as one wgmma group; k-step kk = 16 keys: P
// registers 4 kk .. 4 kk + 3, 16 rows (2 KB) down V's column blocks.
__device__ __forceinline__ void issue_pv(const uint32_t (&pf)[32], uint64_t v_desc, float (&o)[64]) {
  ptx::fence_registers(o);
  ptx::wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < kBlockN / 16; ++kk) {
    wgmma_pv(pf + 4 * kk, v_desc + static_cast<uint64_t>((kk * 16 * 128) >> 4), o, std::make_index_sequence<64>{});
  }
  ptx::wgmma_commit();
}

// Accumulator layout (m64nNk16, per warp w of the warpgroup, lane = 4 g + t): s[4 j + 2 h + e]
// is row 16 w + g + 8 h, column 8 j + 2 t + e. So a thread holds 2 rows (h) x 32 keys.

// Scores of keys past this thread's rows' last visible key -> -inf. key0 = the key of s[0].
__device__ __forceinline__ void apply_mask(float (&s)[64], int key0, const int (&limit)[2]) {
#pragma unroll
  for (int i = 0; i < 64; ++i) {
    if (key0 + 8 * (i / 4) + i % 2 > limit[i / 2 % 2]) s[i] = -INFINITY;
  }
}

// Online softmax of one tile for this thread's two rows: updates the running maxima m (log2
// units, scaled), turns s into exp2(s * scale_log2 - m), returns each row's rescale factor
// alpha = exp2(m_old - m_new) for O, and updates the running sums l = l * alpha + the sum of
// the new exponentials (this thread's keys only; the 4 threads of a row are added at the end).
__device__ __forceinline__ void softmax_tile(float (&s)[64], float (&m)[2], float (&alpha)[2], float (&l)[2],
                                             float scale_log2) {
  float neg_m[2], rowsum[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < 16; ++j) mx = fmaxf(mx, fmaxf(s[4 * j + 2 * h], s[4 * j + 2 * h + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(m[h], mx * scale_log2);
    const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // nothing visible yet: exponents stay -inf
    alpha[h] = ptx::fast_exp2(m[h] - m_use);
    m[h] = m_new;
    neg_m[h] = -m_use;
    rowsum[h] = 0.0f;
  }
#pragma unroll
  for (int i = 0; i < 64; ++i) {
    s[i] = ptx::fast_exp2(fmaf(s[i], scale_log2, neg_m[i / 2 % 2]));
    rowsum[i / 2 % 2] += s[i];
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) l[h] = l[h] * alpha[h] + rowsum[h];
}

// O to the running maximum of the P about to be added (rows as in the accumulator layout).
__device__ __forceinline__ void rescale_o(float (&o)[64], const float (&alpha)[2]) {
#pragma unroll
  for (int i = 0; i < 64; ++i) o[i] *= alpha[i / 2 % 2];
}

// P as the A operand of P V: k-step kk takes keys 16 kk .. 16 kk + 15, i.e. s[8 kk .. 8 kk + 7]
// in the order (row g, keys 2t, 2t+1), (row g + 8, same), (row g, keys 8 + 2t, ..), (row g + 8, ..).
__device__ __forceinline__ void convert_p(const float (&s)[64], uint32_t (&pf)[32]) {
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(s[2 * i], s[2 * i + 1]);
    pf[i] = *reinterpret_cast<const uint32_t*>(&v);
  }
}

// One output row (a token's head: one quantisation group) as e4m3 codes, from the bf16 values
// out2 it would store (this lane's channels 8 j + col0, + 1; the row's 4 lanes form a quad), as
// quantize_activations_fp8 of the stored row: staged at row `r` of the warpgroup's 64 x 128-byte
// tile in shared memory (16-byte chunk c of row r at chunk c ^ (r % 8), so that the 8 rows of a
// warp's store fall in different banks), for copy_staged. Returns the row's scale. Every lane
// of the warp calls it (the amax shuffles).
__device__ __forceinline__ float stage_row_fp8(const MhaPrefillParams& p, const __nv_bfloat162 (&out2)[16],
                                               uint32_t stage, int r, int col0) {
  float v[32];
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    v[2 * j] = __low2float(out2[j]);
    v[2 * j + 1] = __high2float(out2[j]);
  }
  const float scale = gpu::group_act_scale<4, 32>(v, p.amax_floor, p.ue8m0 != 0);
  uint32_t codes[32];
  gpu::quantize_e4m3(v, scale, codes);
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    const uint32_t addr = stage + r * 128 + ((j / 2) ^ (r % 8)) * 16 + (j % 2) * 8 + col0;
    const uint16_t pair = static_cast<uint16_t>(codes[2 * j] | (codes[2 * j + 1] << 8));
    asm volatile("st.shared.u16 [%0], %1;\n" ::"r"(addr), "h"(pair) : "memory");
  }
  return scale;
}

// One output row's bf16 values out2 (this lane's channels 8 j + col0, + 1) staged at row `r` of the
// warpgroup's rows of Q's first two column blocks (channels 0-63, 64-127; 16-byte chunk c of a
// row at c ^ (r % 8), as the codes), for copy_staged.
__device__ __forceinline__ void stage_row_bf16(const __nv_bfloat162 (&out2)[16], uint32_t stage, int r, int col0) {
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    const uint32_t addr = stage + (j / 8) * kBoxBytes + r * 128 + ((j % 8) ^ (r % 8)) * 16 + col0 * 2;
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(addr), "r"(*reinterpret_cast<const uint32_t*>(&out2[j]))
                 : "memory");
  }
}

// The warpgroup's staged rows (rows row0 .. row0 + 63 of the sequence; kChunks 16-byte chunks a
// row: 8 of e4m3 codes from stage_row_fp8, one column block; 16 of bf16 from stage_row_bf16, two)
// to dst ([Tq, n] rows of kChunks * 16 bytes) in 16-byte stores, kChunks threads a row; rows past
// Tq stay unwritten. After a barrier of the warpgroup.
template <int kChunks>
__device__ __forceinline__ void copy_staged(const MhaPrefillParams& p, uint8_t* dst, uint32_t stage, int row0,
                                            int head, int thread) {
#pragma unroll
  for (int i = 0; i < kChunks / 2; ++i) {
    const int k = thread + 128 * i, r = k / kChunks, c = k % kChunks;
    if (row0 + r >= p.tq) continue;
    uint4 chunk;
    asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(chunk.x), "=r"(chunk.y), "=r"(chunk.z), "=r"(chunk.w)
                 : "r"(stage + (c / 8) * kBoxBytes + r * 128 + ((c % 8) ^ (r % 8)) * 16));
    const int64_t out_row = static_cast<int64_t>(row0 + r) * p.n_heads + head;
    *reinterpret_cast<uint4*>(dst + out_row * kChunks * 16 + c * 16) = chunk;
  }
}

// ---- the prefill kernel --------------------------------------------------------------------

__global__ void __launch_bounds__(kThreads, 1) mha_prefill_sm90_kernel(const __grid_constant__ MhaPrefillParams p) {
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  const int tid = static_cast<int>(threadIdx.x), wg = tid / 128;

  // Grid order (heuristics.h): groups of heads; inside a group, query blocks last to first.
  const int group_ctas = p.heads_per_group * p.num_m_blocks;
  const int group = static_cast<int>(blockIdx.x) / group_ctas;
  const int in_group = static_cast<int>(blockIdx.x) - group * group_ctas;
  const int group_heads = min(p.heads_per_group, p.n_heads - group * p.heads_per_group);
  const int m_block = p.num_m_blocks - 1 - in_group / group_heads;
  const int head = group * p.heads_per_group + in_group % group_heads;

  // Keys this block's rows can see: [0, n_end), in n_blocks tiles walked from the last.
  const int shift = p.tk - p.tq;  // causal: query i sees keys 0 .. i + shift
  const int n_end = p.causal ? min(p.tq, (m_block + 1) * kBlockM) + shift : p.tk;
  const int n_blocks = (n_end + kBlockN - 1) / kBlockN;

  const uint32_t s_q = ptx::smem_addr(smem + Smem::kQ), s_k = ptx::smem_addr(smem + Smem::kK),
                 s_v = ptx::smem_addr(smem + Smem::kV), bars = ptx::smem_addr(smem + Smem::kBarriers);
  const uint32_t bar_q = bars;
  auto k_full = [&](int st) { return bars + 8 * (1 + st); };
  auto k_empty = [&](int st) { return bars + 8 * (1 + kStages + st); };
  auto v_full = [&](int st) { return bars + 8 * (1 + 2 * kStages + st); };
  auto v_empty = [&](int st) { return bars + 8 * (1 + 3 * kStages + st); };

  if (tid == 0) {
    ptx::mbarrier_init(bar_q, 1);
#pragma unroll
    for (int st = 0; st < kStages; ++st) {
      ptx::mbarrier_init(k_full(st), 1);
      ptx::mbarrier_init(v_full(st), 1);
      ptx::mbarrier_init(k_empty(st), kConsumerWarps);
      ptx::mbarrier_init(v_empty(st), kConsumerWarps);
    }
    ptx::mbarrier_init_fence();
  }
  __syncthreads();

  if (wg == 0) {
    // ---- producer: one thread walks the key blocks from the last, one tile ahead per stage.
    ptx::set_max_registers_dec<kProducerRegisters>();
    if (tid == 0) {
      tma_load_tile<kHeadDimQk>(s_q, &p.q_map, head, m_block * kBlockM, bar_q);
      for (int it = 0; it < n_blocks; ++it) {
        const int nb = n_blocks - 1 - it, st = it % kStages;
        const uint32_t phase = (it / kStages) & 1;
        mbarrier_wait(k_empty(st), phase ^ 1);
        tma_load_tile<kHeadDimQk>(s_k + st * kKStageBytes, &p.k_map, head, nb * kBlockN, k_full(st));
        mbarrier_wait(v_empty(st), phase ^ 1);
        tma_load_tile<kHeadDimV>(s_v + st * kVStageBytes, &p.v_map, head, nb * kBlockN, v_full(st));
      }
    }
  } else {
    // ---- consumers: warpgroup cw owns rows 64 cw .. 64 cw + 63 of the query block.
    ptx::set_max_registers_inc<kConsumerRegisters>();
    const int cw = wg - 1, lane = tid % 32;
    const bool arrives = lane == 0;  // one arrival per warp on the "empty" barriers
    const int row0 = m_block * kBlockM + cw * 64 + (tid / 32 % 4) * 16 + lane / 4;  // rows row0, row0 + 8
    int limit[2];  // last key visible to each of this thread's rows
#pragma unroll
    for (int h = 0; h < 2; ++h) limit[h] = p.causal ? min(row0 + 8 * h + shift, p.tk - 1) : p.tk - 1;
    // A tile needs the mask when its last key is past the first row's limit of this warpgroup.
    const int first_limit = p.causal ? min(m_block * kBlockM + cw * 64 + shift, p.tk - 1) : p.tk - 1;
    const int key_in_tile = 2 * (lane % 4);

    const uint64_t q_desc = ptx::gmma_desc_sw128(s_q + cw * 64 * 128, 16, 1024);
    auto k_desc = [&](int st) { return ptx::gmma_desc_sw128(s_k + st * kKStageBytes, 16, 1024); };
    auto v_desc = [&](int st) { return ptx::gmma_desc_sw128(s_v + st * kVStageBytes, kBoxBytes, 1024); };

    float o[64], s[64], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, alpha[2];
    uint32_t pf[32];
#pragma unroll
    for (int i = 0; i < 64; ++i) o[i] = 0.0f;

    mbarrier_wait(bar_q, 0);

    // First tile (the last key block): S, softmax, P; no P V yet.
    {
      const int nb = n_blocks - 1;
      mbarrier_wait(k_full(0), 0);
      issue_qk(q_desc, k_desc(0), s);
      ptx::wgmma_wait<0>();
      ptx::fence_registers(s);
      if (arrives) ptx::mbarrier_arrive(k_empty(0));
      if (nb * kBlockN + kBlockN - 1 > first_limit) apply_mask(s, nb * kBlockN + key_in_tile, limit);
      softmax_tile(s, m, alpha, l, p.scale_log2);
      convert_p(s, pf);
    }

    // Steady state: S of tile it overlaps P V of tile it - 1.
    for (int it = 1; it < n_blocks; ++it) {
      const int nb = n_blocks - 1 - it, st = it % kStages, prev = (it - 1) % kStages;
      mbarrier_wait(k_full(st), (it / kStages) & 1);
      issue_qk(q_desc, k_desc(st), s);
      rescale_o(o, alpha);  // to the maximum of P_{it-1}, while S runs
      mbarrier_wait(v_full(prev), ((it - 1) / kStages) & 1);
      issue_pv(pf, v_desc(prev), o);
      ptx::wgmma_wait<1>();  // S done, P V may still run
      ptx::fence_registers(s);
      if (arrives) ptx::mbarrier_arrive(k_empty(st));
      if (nb * kBlockN + kBlockN - 1 > first_limit) apply_mask(s, nb * kBlockN + key_in_tile, limit);
      softmax_tile(s, m, alpha, l, p.scale_log2);
      ptx::wgmma_wait<0>();  // P V done: O and the P registers are free
      ptx::fence_registers(o);
      ptx::fence_registers(pf);
      if (arrives) ptx::mbarrier_arrive(v_empty(prev));
      convert_p(s, pf);
    }

    // Last P V (key block 0), then out = O / l and lse.
    {
      const int last = (n_blocks - 1) % kStages;
      rescale_o(o, alpha);
      mbarrier_wait(v_full(last), ((n_blocks - 1) / kStages) & 1);
      issue_pv(pf, v_desc(last), o);
      ptx::wgmma_wait<0>();
      ptx::fence_registers(o);
    }
    const int col0 = 2 * (lane % 4);
    // The output staged in this warpgroup's rows of Q's column blocks (the codes in the first, the
    // bf16 rows in the first two), which no wgmma reads any more (its last S is done; the other
    // warpgroup reads only its own rows), then copied out in 16-byte stores.
    const uint32_t stage = s_q + cw * 64 * 128;
    const int stage_row = (tid / 32 % 4) * 16 + lane / 4;
    ptx::fence_async_proxy();  // the wgmma reads of Q before these writes
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float total = l[h];
      total += __shfl_xor_sync(0xffffffffu, total, 1);
      total += __shfl_xor_sync(0xffffffffu, total, 2);
      const int row = row0 + 8 * h;
      const float inv = total > 0.0f ? 1.0f / total : 0.0f;
      // The row's 128 channels as stored (bf16), over the 4 lanes of a quad: channels 8 j + col0, + 1.
      __nv_bfloat162 out2[16];
#pragma unroll
      for (int j = 0; j < 16; ++j) out2[j] = __floats2bfloat162_rn(o[4 * j + 2 * h] * inv, o[4 * j + 2 * h + 1] * inv);
      const int64_t out_row = static_cast<int64_t>(row) * p.n_heads + head;
      if (p.out_q != nullptr) {
        const float scale = stage_row_fp8(p, out2, stage, stage_row + 8 * h, col0);
        if (row < p.tq && lane % 4 == 0) p.out_scales[out_row] = scale;
      } else {
        stage_row_bf16(out2, stage, stage_row + 8 * h, col0);
      }
      if (row < p.tq && lane % 4 == 0) p.lse[out_row] = total > 0.0f ? (m[h] + log2f(total)) * 0.69314718f : -INFINITY;
    }
    asm volatile("bar.sync %0, 128;\n" ::"r"(1 + cw) : "memory");  // the warpgroup's rows staged
    if (p.out_q != nullptr) {
      copy_staged<kHeadDimV / 16>(p, p.out_q, stage, m_block * kBlockM + cw * 64, head, tid % 128);
    } else {
      copy_staged<kHeadDimV * 2 / 16>(p, reinterpret_cast<uint8_t*>(p.out), stage, m_block * kBlockM + cw * 64, head,
                                      tid % 128);
    }
  }
}

// ---- attention over no keys ------------------------------------------------------------------

// out = 0 (16-byte stores), lse = -inf: what the contract gives for Tk = 0.
__global__ void __launch_bounds__(kEmptyThreads) mha_empty_sm90_kernel(const MhaEmptyParams p) {
  constexpr int kChunks = kHeadDimV * 2 / 16;  // 16-byte chunks per output row
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.rows * kChunks; i += stride) {
    reinterpret_cast<uint4*>(p.out)[i] = make_uint4(0, 0, 0, 0);
    if (i % kChunks == 0) p.lse[i / kChunks] = -INFINITY;
  }
}

}  // namespace mlaserve::ops::sm90::mha
