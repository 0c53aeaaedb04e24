// sm_80 instruction-set PTX wrappers shared by the mma.sync kernels (correct on sm_90a): 16- and
// 4-byte cp.async with zero fill, ldmatrix (plain and transposed) and the bf16 m16n8k16 mma.
//
// Used by moe_grouped_gemm_sm80.cuh (and through it moe_grouped_gemm_fp8_sm89.cuh) and
// mla_absorb_mma.cuh, with the shared-memory swizzle they all use (swizzled_offset; the row
// width is each kernel's).
#pragma once

#include <cstdint>

namespace mlaserve::ops::sm80 {

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, through L2 only; with valid == false nothing is read and the 16
// bytes are zero-filled.
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool valid) {
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}

// 4 bytes global -> shared, through L1 (cp.async takes 4 bytes with .ca only); with valid ==
// false nothing is read and the 4 bytes are zero-filled. For per-stage scalars such as block
// scales, copied in the same commit group as their stage's tiles.
__device__ __forceinline__ void cp_async_4(uint32_t dst, const void* src, bool valid) {
  const int bytes = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}

// Byte offset of 16-byte chunk `chunk` of row `row` in a shared tile of kRowBytes-byte rows whose
// chunk j is stored at chunk j ^ (row % 8): the 8 row addresses of a ldmatrix (8 consecutive rows,
// one chunk) and of a warp's 16-byte cp.async stores then fall in 8 different bank groups.
template <int kRowBytes>
__device__ __forceinline__ uint32_t swizzled_offset(int row, int chunk) {
  static_assert(kRowBytes % 128 == 0, "rows of whole 128-byte bank cycles (8 chunks or more)");
  return static_cast<uint32_t>(row * kRowBytes + ((chunk ^ (row & 7)) << 4));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Four 8 x 8 b16 matrices; lane l gives the address of row l % 8 of matrix l / 8 and receives
// in r[i] the pair (row l / 4, columns 2(l % 4), +1) of matrix i.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// The same addresses, each matrix transposed: r[i] holds (rows 2(l % 4), +1; column l / 4) of
// matrix i, i.e. the mma B fragment of a tile stored K-major ([k][n] rows in shared memory).
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// d += a · b for one m16n8k16 tile (a: 4 regs of bf16 pairs, b: 2, d: 4 fp32).
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

}  // namespace mlaserve::ops::sm80
