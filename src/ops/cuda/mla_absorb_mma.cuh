// The MLA W_UK absorption (ops/mla_absorb.h, mla_absorb_query) for 8 < T <= 256 rows: a per-head
// tensor-core GEMM that reads W_UK[h] in place from kv_b_proj's layout. Device code; launch code
// and the shapes it takes: mla_absorb_mma.cu / .h, chosen by mla_absorb_cuda.cc after the GEMVs
// (T <= 8, mla_absorb_gemv.cuh) and before cuBLASLt (T > 256 and the shapes this one refuses).
//
// Why: with pipeline parallelism every step is eager, and rank 0's host spent ~200 us a layer
// inside cuBLASLt's strided batched GEMM call for these T (not its plan building, not the q_pe
// copy: bench/NOTES-dist.md, 2026-11-28 19:46-20:10) while the GPU waited. One plain launch of a
// kernel of ours should cost a few us of host time (decode_gemv_bench's "host us" column says),
// and the q_pe copy goes inside it. The W_UV up-projection keeps cuBLASLt past the GEMVs: the
// same tiling there (16 CTAs at 16 heads) was 2-3x slower than cuBLASLt (mla_absorb_cuda.cc).
//
// Symbols: T tokens, n heads, dn = 128 nope channels (K), dr = 64 rope channels, dc = 512 latent
// channels (N), rph = dn + dv rows of w_kv_b per head.
//   q      [T, n, dn + dr] bf16, row stride n·(dn + dr)    A of head h: q[:, h, :dn]  [T, dn]
//   w_kv_b [n·rph, dc]     bf16                            B of head h: rows h·rph .. + dn  [dn, dc]
//   q_abs  [T, n, dc + dr] bf16, row stride n·(dc + dr)    q_abs[t, h, c] = Σ_d q[t, h, d]·W_UK[h][d, c]
//                                                          (fp32 sums, rounded once), then q_pe
//
// CTA (column block of kAbsorbMmaCols = 128 of dc, row block of kAbsorbMmaRows = 64 of T, head h);
// grid (dc / 128, ceil(T / 64), n), 4 warps side by side along the columns (warp w: columns
// 32w .. 32w + 32, all 64 rows: 4 m16 x 4 n8 mma tiles, 64 fp32 accumulators a thread).
// Shared memory, 48 KB: A [64 rows t][128 d] then B [128 rows d][128 c], bf16, 256-byte rows
// whose 16-byte chunks are swizzled (sm80::swizzled_offset: the 8 row addresses of every
// ldmatrix fall in 8 different bank groups). K = dn = 128 is one tile (a larger dn multiple of
// 16 loops over 128-row tiles, one barrier apart).
//   - B, the weights, by 16-byte cp.async, issued before grid_dependency_wait() (programmatic
//     dependent launch, pdl.cuh: no kernel of a step writes w_kv_b), so the first trip to HBM
//     overlaps the kernel before (the query's RoPE). A, the query rows the kernel before wrote, by
//     cp.async after the wait; rows t >= T are zero-filled (nothing read from q) and never stored.
//   - Per k16 step: B fragments by ldmatrix.x4.trans (B is K-major: [d][c] rows; two n8 tiles a
//     load), A fragments by ldmatrix.x4 (one m16 tile a load, skipped with its mma when the tile
//     starts at or past T; absorb_mma_k16), mma.sync m16n8k16 bf16 -> fp32.
//   - Epilogue (absorb_mma_store): each thread rounds its accumulator pairs once to bf16 and
//     stores them as bf16x2 (4 bytes; the four threads of a quad fill 16 contiguous bytes of a row).
//   - The CTAs of column block 0 also copy their rows' q_pe into q_abs[t, h, dc ..] (16-byte
//     vectors), which cuBLASLt's path does with a 2-D cudaMemcpy.
// Weight-bound like the GEMVs: each head's 128 KB W_UK slice comes from HBM once a call (the
// ceil(T / 64) row blocks of a head read it again, from L2).
//
// Requirements (mla_absorb_mma_applies; otherwise cuBLASLt): dn % 16 == 0, dr % 8 == 0,
// dc % 128 == 0, q, w_kv_b and q_abs 16-byte aligned.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/mla_absorb_gemv.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/sm80_ptx.cuh"

namespace mlaserve::ops::gpu {

inline constexpr int kAbsorbMmaRows = 64;                            // rows t of q per CTA
inline constexpr int kAbsorbMmaCols = 128;                           // columns c of q_abs per CTA
inline constexpr int kAbsorbMmaK = 128;                              // rows d of W_UK per shared tile
inline constexpr int kAbsorbMmaWarps = 4;                            // side by side along the columns
inline constexpr int kAbsorbMmaThreads = 32 * kAbsorbMmaWarps;
inline constexpr int kAbsorbMmaWarpCols = kAbsorbMmaCols / kAbsorbMmaWarps;  // 32
inline constexpr int kAbsorbMmaMi = kAbsorbMmaRows / 16;             // m16 tiles a warp
inline constexpr int kAbsorbMmaNi = kAbsorbMmaWarpCols / 8;          // n8 tiles a warp
inline constexpr int kAbsorbMmaRowBytes = 256;                       // one shared row: 128 bf16 of A or B
inline constexpr int kAbsorbMmaSmemBytes = (kAbsorbMmaRows + kAbsorbMmaK) * kAbsorbMmaRowBytes;
static_assert(kAbsorbMmaK * 2 == kAbsorbMmaRowBytes && kAbsorbMmaCols * 2 == kAbsorbMmaRowBytes,
              "A rows hold one K tile and B rows one column block: 16 chunks of 16 bytes each");
static_assert(kAbsorbMmaSmemBytes <= 48 * 1024, "static shared memory");
static_assert(kAbsorbMmaNi % 2 == 0, "B fragments come two n8 tiles a ldmatrix.x4.trans");

using AbsorbMmaAcc = float[kAbsorbMmaMi][kAbsorbMmaNi][4];  // a thread's accumulators (its warp's 64 x 32)

__device__ __forceinline__ void absorb_mma_zero(AbsorbMmaAcc& acc) {
#pragma unroll
  for (int mi = 0; mi < kAbsorbMmaMi; ++mi) {
#pragma unroll
    for (int ni = 0; ni < kAbsorbMmaNi; ++ni) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;
    }
  }
}

// One k16 step of a warp: acc += A[:, 16ks .. +16] · b for the m16 tiles that start below `rows`
// (the same for the whole CTA), A the swizzled [64 t][128 d] tile at a_smem.
__device__ __forceinline__ void absorb_mma_k16(AbsorbMmaAcc& acc, uint32_t a_smem, int ks, int rows,
                                               const uint32_t (&b)[kAbsorbMmaNi][2], int lane) {
#pragma unroll
  for (int mi = 0; mi < kAbsorbMmaMi; ++mi) {
    if (16 * mi >= rows) break;
    uint32_t a[4];
    sm80::ldmatrix_x4(a, a_smem + sm80::swizzled_offset<kAbsorbMmaRowBytes>(16 * mi + lane % 16, 2 * ks + lane / 16));
#pragma unroll
    for (int ni = 0; ni < kAbsorbMmaNi; ++ni) sm80::mma_16816(acc[mi][ni], a, b[ni][0], b[ni][1]);
  }
}

// The epilogue: dst is the warp's (row 0, column 0) in the output, out_row elements between rows;
// accumulator e of tile (mi, ni) is row 16mi + lane / 4 + 8(e / 2), column 8ni + 2(lane % 4) + e % 2.
__device__ __forceinline__ void absorb_mma_store(const AbsorbMmaAcc& acc, __nv_bfloat16* dst, int64_t out_row,
                                                 int rows, int lane) {
#pragma unroll
  for (int mi = 0; mi < kAbsorbMmaMi; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = 16 * mi + lane / 4 + 8 * half;
      if (r >= rows) continue;
      __nv_bfloat16* row = dst + r * out_row + 2 * (lane % 4);
#pragma unroll
      for (int ni = 0; ni < kAbsorbMmaNi; ++ni) {
        *reinterpret_cast<__nv_bfloat162*>(row + 8 * ni) =
            __floats2bfloat162_rn(acc[mi][ni][2 * half], acc[mi][ni][2 * half + 1]);
      }
    }
  }
}

// grid (dc / kAbsorbMmaCols, ceil(T / kAbsorbMmaRows), n), block kAbsorbMmaThreads; launched
// with launch_programmatic.
__global__ void __launch_bounds__(kAbsorbMmaThreads) mla_absorb_mma_kernel(MlaAbsorbGemvParams p) {
  __shared__ __align__(128) uint8_t smem[kAbsorbMmaSmemBytes];
  const uint32_t a_smem = sm80::smem_u32(smem);                      // [64 t][128 d]
  const uint32_t b_smem = a_smem + kAbsorbMmaRows * kAbsorbMmaRowBytes;  // [128 d][128 c]
  const auto offset = [](int row, int chunk) { return sm80::swizzled_offset<kAbsorbMmaRowBytes>(row, chunk); };
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int c0 = blockIdx.x * kAbsorbMmaCols, m0 = blockIdx.y * kAbsorbMmaRows, h = blockIdx.z;
  const int64_t q_row = int64_t{p.n} * (p.dn + p.dr);    // elements between tokens of q
  const int64_t out_row = int64_t{p.n} * (p.dc + p.dr);  // elements between tokens of q_abs
  const __nv_bfloat16* w_uk = p.w + int64_t{h} * p.rph * p.dc + c0;  // W_UK[h] [dn, dc] from column c0
  const __nv_bfloat16* q_h = p.q + int64_t{h} * (p.dn + p.dr);       // q[0, h, 0]
  __nv_bfloat16* out_h = p.q_abs + int64_t{h} * (p.dc + p.dr);       // q_abs[0, h, 0]

  // B: rows k0 .. k0 + kk of W_UK[h], this CTA's 128 columns (16 chunks a row).
  const auto load_b = [&](int k0, int kk) {
    for (int i = threadIdx.x; i < kAbsorbMmaK * 16; i += kAbsorbMmaThreads) {
      const int r = i / 16, ch = i % 16;
      if (r < kk) sm80::cp_async_16(b_smem + offset(r, ch), w_uk + int64_t{k0 + r} * p.dc + 8 * ch, true);
    }
  };
  // A: channels k0 .. k0 + kk of rows m0 .. m0 + 64 of q[:, h]; zeros past T.
  const auto load_a = [&](int k0, int kk) {
    for (int i = threadIdx.x; i < kAbsorbMmaRows * 16; i += kAbsorbMmaThreads) {
      const int r = i / 16, ch = i % 16, t = m0 + r;
      if (8 * ch < kk) {
        sm80::cp_async_16(a_smem + offset(r, ch), q_h + int64_t{t < p.t ? t : 0} * q_row + k0 + 8 * ch, t < p.t);
      }
    }
  };

  // Weights only before the wait (the note at the top).
  load_b(0, min(kAbsorbMmaK, p.dn));
  sm80::cp_async_commit();
  grid_dependency_wait();
  launch_dependents();

  AbsorbMmaAcc acc;
  absorb_mma_zero(acc);
  const int rows = min(kAbsorbMmaRows, p.t - m0);  // this CTA's rows of T (>= 1)
  for (int k0 = 0; k0 < p.dn; k0 += kAbsorbMmaK) {
    const int kk = min(kAbsorbMmaK, p.dn - k0);  // a multiple of 16
    if (k0 > 0) {
      __syncthreads();  // every warp is done with the previous tiles
      load_b(k0, kk);
    }
    load_a(k0, kk);
    sm80::cp_async_commit();
    if (k0 == 0 && blockIdx.x == 0) {  // q_pe -> q_abs[t, h, dc ..], while the tiles land
      const int vecs = p.dr / 8;
      for (int i = threadIdx.x; i < rows * vecs; i += kAbsorbMmaThreads) {
        const int64_t t = m0 + i / vecs;
        const int v = i % vecs;
        *reinterpret_cast<uint4*>(out_h + t * out_row + p.dc + 8 * v) =
            *reinterpret_cast<const uint4*>(q_h + t * q_row + p.dn + 8 * v);
      }
    }
    sm80::cp_async_wait<0>();
    __syncthreads();

#pragma unroll
    for (int ks = 0; ks < kAbsorbMmaK / 16; ++ks) {
      if (16 * ks >= kk) break;
      uint32_t b[kAbsorbMmaNi][2];
#pragma unroll
      for (int np = 0; np < kAbsorbMmaNi / 2; ++np) {  // n8 tiles 2np, 2np + 1
        uint32_t r[4];
        const int d = 16 * ks + lane % 8 + ((lane / 8) & 1) * 8;
        const int c = kAbsorbMmaWarpCols * warp + 16 * np + (lane / 16) * 8;
        sm80::ldmatrix_x4_trans(r, b_smem + offset(d, c / 8));
        b[2 * np][0] = r[0];
        b[2 * np][1] = r[1];
        b[2 * np + 1][0] = r[2];
        b[2 * np + 1][1] = r[3];
      }
      absorb_mma_k16(acc, a_smem, ks, rows, b, lane);
    }
  }
  absorb_mma_store(acc, out_h + int64_t{m0} * out_row + c0 + kAbsorbMmaWarpCols * warp, out_row, rows, lane);
}

}  // namespace mlaserve::ops::gpu
