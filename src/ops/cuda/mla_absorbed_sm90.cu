// The fused absorbed MLA attention kernel's launch code (mla_absorbed_sm90.cuh): the kernel's
// attributes, the driver's count of resident clusters of 16, and the launch with a cluster
// dimension and programmatic dependent launch. Called by mla_absorbed_attention_cuda.cc, which
// checks the shapes.
#include "ops/cuda/mla_absorbed_sm90.h"

#include "core/cuda_check.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/mla_absorbed_sm90.cuh"

namespace mlaserve::ops::sm90 {
namespace {

// The kernel's launch for `clusters` clusters of 16 CTAs (B G, or 2 B G with head halves).
gpu::LaunchShape absorbed_shape(int clusters) {
  return {dim3(kFusedHeads, static_cast<unsigned>(clusters)), dim3(kFusedThreads), kFusedSmemBytes, kFusedHeads};
}

// Sets the kernel's attributes on the current device and asks how many clusters of 16 CTAs it
// holds at once. Clusters of 16 are a non-portable size: a GPU that refuses them holds none (the
// error is cleared).
int query_max_active_clusters() {
  auto* kernel = mla_absorbed_sm90_kernel<false>;
  for (auto* k : {mla_absorbed_sm90_kernel<false>, mla_absorbed_sm90_kernel<true>}) {  // the same resources
    MLA_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, kFusedSmemBytes));
    if (cudaFuncSetAttribute(k, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
  }
  cudaLaunchAttribute attrs[2]{};
  const cudaLaunchConfig_t config = gpu::launch_config(absorbed_shape(1), nullptr, attrs);
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return clusters;
}

}  // namespace

int absorbed_max_active_clusters() {
  static gpu::PerDeviceInts counts{};
  return gpu::cached_per_device(counts, gpu::current_device(), "absorbed_max_active_clusters",
                           [](int) { return query_max_active_clusters(); });
}

void launch_mla_absorbed(const MlaAbsorbedParams& p, int num_seqs, bool split_heads, cudaStream_t stream) {
  const int clusters = num_seqs * p.groups;
  MLA_CHECK(num_seqs >= 1 && num_seqs <= kFusedMaxSeqs && p.groups >= 1 && p.groups <= kFusedMaxGroups &&
                clusters <= absorbed_max_active_clusters(),
            "mla_absorbed_attention_cuda: {} sequences (1 to {}) of {} head groups (1 to {}), and this GPU holds {} "
            "clusters of 16 CTAs",
            num_seqs, kFusedMaxSeqs, p.groups, kFusedMaxGroups, absorbed_max_active_clusters());  // sets attributes
  // Two clusters a head group (head halves) where the GPU holds them all at once: each SM then
  // streams half a head's W_UK and W_UV.
  const bool halves = split_heads && 2 * clusters <= absorbed_max_active_clusters();
  auto* kernel = halves ? mla_absorbed_sm90_kernel<true> : mla_absorbed_sm90_kernel<false>;
  gpu::launch_with_shape(kernel, absorbed_shape(halves ? 2 * clusters : clusters), stream, p);
}

}  // namespace mlaserve::ops::sm90
