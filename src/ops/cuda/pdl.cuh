// Programmatic dependent launch (PDL) and L2 prefetch for the kernels of a decode step's serial
// chain: those that stream weights (linear_gemv.cuh, moe_grouped_gemm_sm80.cuh,
// moe_experts_gemv.cuh, mla_absorb_gemv.cuh) and the small ones between them (rms_norm,
// latent_rows, rope, silu_mul, embedding, the MoE router, grouping, fused routing + gather and
// decode-size combine).
//
// Why: a decode step is a serial chain of short kernels; each one's launch and its first trip to
// HBM (~2 us together on an H200) sit between the previous kernel's end and its own first byte.
// A kernel launched with launch_programmatic may start while the kernel before it in the stream
// ends (when that kernel's CTAs have all called launch_dependents() or exited). It must not read
// what that kernel writes, nor write what it reads, before grid_dependency_wait(); what it may do
// first is read what no kernel of the step writes: its weights, loaded into registers or shared
// memory (the GEMVs, the MoE down GEMM's first k-tiles) or prefetched into L2 (prefetch_l2, which
// returns nothing), so that the first trip to HBM overlaps the kernel before.
//
// Rule for the kernels here: before grid_dependency_wait() a kernel reads only weights (written
// once, at load time: a test or benchmark that writes weights with a kernel puts a memset, an
// event or a sync between it and the kernels that read them, since a kernel that never calls
// launch_dependents() lets a programmatic launch after it start once its CTAs have exited,
// before its writes are known to be visible) and what kernels two or more back wrote (below);
// after it, what the kernel just before writes. Each kernel calls launch_dependents() after its
// wait, so that the next kernel's CTAs start only after every CTA of this one has passed its
// wait: what the kernels before this one wrote is then visible to the next kernel even before
// its own wait. A kernel that reads anything but weights before its wait says in a comment why
// that is safe (the MoE down GEMM's and down GEMV's expert offsets, moe_grouped_gemm_sm80.cuh,
// moe_experts_gemv.cuh).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "core/cuda_check.h"

namespace mlaserve::ops::gpu {

__device__ __forceinline__ void grid_dependency_wait() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }

__device__ __forceinline__ void launch_dependents() {
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
}

// The 128-byte line holding p into this SM's L1 (prefetch.global.L1): a load's latency taken
// early without a register held.
__device__ __forceinline__ void prefetch_l1(const void* p) {
  asm volatile("prefetch.global.L1 [%0];" ::"l"(p) : "memory");
}

// Bulk prefetch of [p, p + bytes) into L2 (sm_90). p 16-byte aligned, bytes a multiple of 16.
__device__ __forceinline__ void prefetch_l2(const void* p, uint32_t bytes) {
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(bytes) : "memory");
}

// kernel<<<grid, block, smem, stream>>>(args...) with programmatic stream serialisation allowed.
template <typename... Params, typename... Args>
void launch_programmatic(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                         Args&&... args) {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = &attr;
  config.numAttrs = 1;
  MLA_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

}  // namespace mlaserve::ops::gpu
