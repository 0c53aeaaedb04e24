// Hopper (sm_90a) PTX wrappers shared by the TMA + mbarrier + wgmma kernels: mbarriers, 2-D TMA
// loads, the wgmma fences/groups and the shared-memory descriptor of a K-major operand in the
// 128-byte swizzle, 4-byte cp.async and cp.async completion on an mbarrier, and the
// distributed-shared-memory and cluster-barrier instructions of thread-block clusters. The wgmma
// instructions themselves come from CuTe (cute/arch/mma_sm90_gmma.hpp).
//
// Used by moe_grouped_gemm_sm90.cuh, moe_grouped_gemm_fp8_sm90.cuh, linear_fp8_sm90.cuh and
// mla_absorbed_sm90.cuh.
// mha_attention_sm90.cuh and mla_decode_sm90.cuh keep their own variants (single-arrival
// barriers, 3-D and multi-box TMA loads, descriptors with other strides), not yet moved here.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "ops/cuda/sm80_ptx.cuh"

namespace mlaserve::ops::sm90::ptx {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ---- mbarriers (shared::cta) ----------------------------------------------------------------

__device__ __forceinline__ void mbarrier_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Makes the initialised barriers visible to the async proxy (TMA) and the other threads.
__device__ __forceinline__ void mbarrier_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void mbarrier_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// One arrival that also expects `bytes` of asynchronous copies to complete on the barrier.
__device__ __forceinline__ void mbarrier_arrive_expect_bytes(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// Spins until the phase with the given parity has completed.
__device__ __forceinline__ void mbarrier_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// The same, acquiring at cluster scope what other CTAs wrote into this CTA's shared memory by
// st.async (their complete_tx releases at cluster scope).
__device__ __forceinline__ void mbarrier_wait_cluster(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// ---- TMA ------------------------------------------------------------------------------------

// One box of a 2-D tensor map at (inner, outer) coordinates into shared memory at dst; the bytes
// complete on the mbarrier `bar`. Elements outside the tensor read as zeros.
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, int inner, int outer, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(inner), "r"(outer), "r"(bar)
      : "memory");
}

// One box of a 3-D tensor map at (c0, c1, c2) into shared memory at dst, as tma_load_2d.
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const CUtensorMap* map, int c0, int c1, int c2, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}

// tma_load_2d / tma_load_3d into every CTA of the cluster whose bit is set in cta_mask, with an L2
// cache policy for the lines they read: the box lands at dst in each of those CTAs and completes
// its bytes on the mbarrier at offset `bar` in each.
__device__ __forceinline__ void tma_load_2d_multicast(uint32_t dst, const CUtensorMap* map, int inner, int outer,
                                                      uint32_t bar, uint16_t cta_mask, uint64_t policy) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster.L2::cache_hint "
      "[%0], [%1, {%2, %3}], [%4], %5, %6;\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(inner), "r"(outer), "r"(bar), "h"(cta_mask), "l"(policy)
      : "memory");
}
__device__ __forceinline__ void tma_load_3d_multicast(uint32_t dst, const CUtensorMap* map, int c0, int c1, int c2,
                                                      uint32_t bar, uint16_t cta_mask, uint64_t policy) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster.L2::cache_hint "
      "[%0], [%1, {%2, %3, %4}], [%5], %6, %7;\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(bar), "h"(cta_mask), "l"(policy)
      : "memory");
}

// L2 cache policy (createpolicy) that marks the lines a load brings in to be evicted first.
__device__ __forceinline__ uint64_t l2_evict_first_policy() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
  return policy;
}

// tma_load_3d with an L2 cache policy for the lines it reads.
__device__ __forceinline__ void tma_load_3d_hint(uint32_t dst, const CUtensorMap* map, int c0, int c1, int c2,
                                                 uint32_t bar, uint64_t policy) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, %3, "
      "%4}], [%5], %6;\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(bar), "l"(policy)
      : "memory");
}

// tma_load_2d with an L2 cache policy for the lines it reads.
__device__ __forceinline__ void tma_load_2d_hint(uint32_t dst, const CUtensorMap* map, int inner, int outer, uint32_t bar,
                                                 uint64_t policy) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, %3}], "
      "[%4], %5;\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(inner), "r"(outer), "r"(bar), "l"(policy)
      : "memory");
}

// The same box into L2 only (no shared memory, no barrier): a later load of it hits L2.
__device__ __forceinline__ void tma_prefetch_2d(const CUtensorMap* map, int inner, int outer) {
  asm volatile("cp.async.bulk.prefetch.tensor.2d.L2.global.tile [%0, {%1, %2}];\n" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(inner), "r"(outer)
               : "memory");
}

// Bulk copy of `bytes` (a multiple of 16, both addresses 16-byte aligned) from global memory into
// shared memory, completing on the mbarrier as transaction bytes (no tensor map).
__device__ __forceinline__ void bulk_load(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
               "l"(src), "r"(bytes), "r"(bar)
               : "memory");
}

// ---- registers -------------------------------------------------------------------------------

// setmaxnreg: the calling warpgroup's registers per thread become kRegs (a multiple of 8 in
// [24, 256]); all its warps execute it. inc waits until the SM's pool has the registers that
// other warpgroups' dec gave back. ptxas honours it only when __launch_bounds__ fixes the count at
// entry (threads and 1 block per SM), and the warpgroups' counts must add up to no more.
template <int kRegs>
__device__ __forceinline__ void raise_registers() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void lower_registers() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}

// ---- wgmma ----------------------------------------------------------------------------------

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most kPending of this warpgroup's committed wgmma groups are still running.
template <int kPending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// Keeps the compiler from moving accumulator accesses across wgmma issue and wait.
template <int N>
__device__ __forceinline__ void fence_registers(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N>
__device__ __forceinline__ void fence_registers(uint32_t (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(r[i])::"memory");
}

// ---- softmax ---------------------------------------------------------------------------------

// 2^x on the MUFU unit alone: ex2.approx.ftz flushes results below 2^-126 to 0 (a probability that
// small is 0 anyway), where exp2f adds a range check and two multiplies around the same instruction.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// ---- register budget of a warpgroup (warp-specialised kernels) -----------------------------

template <int kRegisters>
__device__ __forceinline__ void set_max_registers_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}
template <int kRegisters>
__device__ __forceinline__ void set_max_registers_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}

// wgmma shared-memory descriptor of an operand in the 128-byte swizzle, with its leading and
// stride byte offsets (the layouts' strides between column blocks and between 8-row groups).
__device__ __forceinline__ uint64_t gmma_desc_sw128(uint32_t addr, uint32_t leading_bytes, uint32_t stride_bytes) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | static_cast<uint64_t>(leading_bytes >> 4) << 16 |
         static_cast<uint64_t>(stride_bytes >> 4) << 32 | uint64_t{1} << 62;
}
// A K-major operand: rows of 128 bytes, 8-row groups 1024 bytes apart; the leading byte offset
// is unused. Adding 2 advances 32 bytes along K inside the swizzled row (one k16 step of bf16).
__device__ __forceinline__ uint64_t gmma_desc_k_sw128(uint32_t addr) { return gmma_desc_sw128(addr, 16, 1024); }

// Makes this thread's generic-proxy shared-memory writes (st.shared) visible to the async proxy
// that wgmma and TMA read through; a barrier after it publishes them to the CTA.
__device__ __forceinline__ void fence_async_proxy() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// ---- cp.async and its completion on an mbarrier, distributed shared memory, cluster barriers ----

// 4 bytes global -> shared, zero-filled when not valid (sm80_ptx.cuh). For per-stage scalars
// that complete on a stage's mbarrier through cp_async_arrive_noinc.
using sm80::cp_async_4;
// An arrival on `bar` once every cp.async this thread has issued so far has landed; the barrier's
// expected count includes it (noinc).
__device__ __forceinline__ void cp_async_arrive_noinc(uint32_t bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
// The address of the same shared-memory location in the CTA of cluster rank `rank`.
__device__ __forceinline__ uint32_t map_rank(uint32_t addr, int rank) {
  uint32_t out;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(out) : "r"(addr), "r"(rank));
  return out;
}
// One arrival on the mbarrier at the same offset as `bar` in the cluster's CTA of rank `rank`: a
// consumer's "done reading this slot" to a producer that refills it in both CTAs by TMA multicast
// (as CUTLASS's cluster pipelines release a stage). Default semantics (release at CTA scope): the
// .release.cluster form costs a MEMBAR.ALL.GPU before each arrival (SASS), which made the
// multicast seesaw 25-37% slower than the plain one (bench/NOTES-mla-decode.md, fifty-fifth session).
__device__ __forceinline__ void mbarrier_arrive_rank(uint32_t bar, int rank) {
  asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];\n" ::"r"(map_rank(bar, rank)) : "memory");
}
__device__ __forceinline__ void st_cluster_u32(uint32_t addr, uint32_t v) {
  asm volatile("st.shared::cluster.u32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
// 16 bytes into a cluster peer's shared memory at addr (16-byte aligned), completing 16 bytes of
// transactions on the peer's mbarrier remote_bar (both addresses from map_rank); the writer does
// not wait.
__device__ __forceinline__ void st_async_u32x4(uint32_t addr, uint4 v, uint32_t remote_bar) {
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.b32 [%0], {%1, %2, %3, %4}, [%5];\n" ::"r"(
                   addr),
               "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w), "r"(remote_bar)
               : "memory");
}
// Every thread of every CTA of the cluster: arrive (this thread's earlier accesses released to the
// cluster; relaxed: nothing released), then wait for all arrivals (the others' writes acquired).
// The .aligned forms need the warp converged: the arrive reconverges it first.
__device__ __forceinline__ void cluster_arrive() {
  __syncwarp();
  asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void cluster_arrive_relaxed() {
  __syncwarp();
  asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void cluster_wait() { asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory"); }

}  // namespace mlaserve::ops::sm90::ptx
