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

// How a kernel is launched: grid, block, dynamic shared memory, thread-block clusters of
// `cluster` CTAs along x (0: none), and whether programmatic stream serialisation is allowed.
struct LaunchShape {
  dim3 grid, block;
  size_t smem = 0;
  unsigned cluster = 0;
  bool programmatic = true;
};

// cudaLaunchKernelEx's configuration for shape on stream; attrs is its attribute storage (it must
// outlive the configuration's use).
inline cudaLaunchConfig_t launch_config(const LaunchShape& shape, cudaStream_t stream,
                                        cudaLaunchAttribute (&attrs)[2]) {
  cudaLaunchConfig_t config{};
  config.gridDim = shape.grid;
  config.blockDim = shape.block;
  config.dynamicSmemBytes = shape.smem;
  config.stream = stream;
  config.attrs = attrs;
  config.numAttrs = 0;
  if (shape.cluster != 0) {
    cudaLaunchAttribute& a = attrs[config.numAttrs++];
    a = cudaLaunchAttribute{};
    a.id = cudaLaunchAttributeClusterDimension;
    a.val.clusterDim.x = shape.cluster;
    a.val.clusterDim.y = a.val.clusterDim.z = 1;
  }
  if (shape.programmatic) {
    cudaLaunchAttribute& a = attrs[config.numAttrs++];
    a = cudaLaunchAttribute{};
    a.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    a.val.programmaticStreamSerializationAllowed = 1;
  }
  return config;
}

// kernel launched with `shape` on stream (a kernel launched without programmatic serialisation
// waits for the one before as usual; its grid_dependency_wait() then returns at once).
template <typename... Params, typename... Args>
void launch_with_shape(void (*kernel)(Params...), const LaunchShape& shape, cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attrs[2];
  const cudaLaunchConfig_t config = launch_config(shape, stream, attrs);
  MLA_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

// kernel<<<grid, block, smem, stream>>>(args...) with programmatic stream serialisation allowed.
template <typename... Params, typename... Args>
void launch_programmatic(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                         Args&&... args) {
  launch_with_shape(kernel, LaunchShape{grid, block, smem}, stream, std::forward<Args>(args)...);
}

}  // namespace mlaserve::ops::gpu
