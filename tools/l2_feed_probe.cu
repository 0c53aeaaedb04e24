// How fast can TMA copies feed the SMs' shared memory with the 128-head MLA decode kernel's
// traffic, and what would sharing each cache block between the two query tiles' CTAs by multicast
// save? No arithmetic: each CTA only streams 64-row cache blocks ([64 rows][576 bf16], 72 KB as nine
// 8 KB boxes, the kernels' layout) through a ring of `stages` shared-memory slots, one CTA an SM.
//
// Layouts of the work, as the seesaw kernel's whole plan at b128 x 4096 x 128 heads: 8,192 cache
// blocks in 66 pieces, each piece read by
//   pair      two CTAs (the two 64-head query tiles) that each copy all nine boxes (main's traffic:
//             every block crosses L2 -> SM twice);
//   multicast a 2-CTA cluster where each CTA copies half of the boxes into both CTAs
//             (`.multicast::cluster`); a slot is refilled once both CTAs have released it;
//   solo      one CTA (132 pieces; each block crosses once: the 16-head kernels' traffic).
// With `span` smaller than the cache, blocks repeat within span rows, so they come from L2.
//
//   nvcc -O2 -std=c++17 -arch=sm_90a -o /tmp/l2_feed_probe tools/l2_feed_probe.cu -lcuda
//   /tmp/l2_feed_probe
//
// Prints, for each layout, the time of one pass (median of 7) and the bytes delivered into shared
// memory and requested from L2 per second.
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "probe_check.h"

constexpr int kBlockRows = 64;
constexpr int kBoxes = 9;                                // 64-channel column blocks of a 576-wide row
constexpr int kBoxBytes = kBlockRows * 64 * 2;           // 8 KB
constexpr int kBlockBytes = kBoxes * kBoxBytes;          // 72 KB
constexpr int kMaxStages = 3;
constexpr int kCacheBlocks = 8192;                       // b128 x 4096 tokens
constexpr int kSmem = kMaxStages * kBlockBytes + 1024;   // one CTA an SM whatever the stages

enum Layout { kPair = 0, kMulticast = 1, kSolo = 2 };

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void wait_parity(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  while (!done) {
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                 : "=r"(done)
                 : "r"(bar), "r"(parity)
                 : "memory");
  }
}
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned; barrier.cluster.wait.acquire.aligned;" ::: "memory");
}

// Grid: pieces x ctas_a_piece CTAs of 128 threads; thread 0 copies, thread 32 releases.
__global__ void __launch_bounds__(128, 1) feed(const __grid_constant__ CUtensorMap map, int layout, int stages,
                                               int blocks_a_piece, int span_blocks) {
  extern __shared__ __align__(1024) uint8_t smem[];
  __shared__ __align__(8) uint64_t full[kMaxStages], empty[kMaxStages];
  const int per = layout == kSolo ? 1 : 2;
  const int piece = blockIdx.x / per, rank = blockIdx.x % per;
  const bool mc = layout == kMulticast;
  if (threadIdx.x == 0) {
    for (int s = 0; s < stages; ++s) {
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_addr(&full[s])));
      asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(&empty[s])), "r"(mc ? 2 : 1));
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  if (mc) cluster_sync(); else __syncthreads();
  const uint32_t base = (smem_addr(smem) + 1023) & ~1023u;
  if (threadIdx.x == 0) {
    for (int i = 0; i < blocks_a_piece; ++i) {
      const int s = i % stages;
      if (i >= stages) wait_parity(smem_addr(&empty[s]), ((i / stages) - 1) & 1);
      const uint32_t fb = smem_addr(&full[s]);
      asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(fb), "r"(kBlockBytes) : "memory");
      const int row = ((piece * blocks_a_piece + i) % span_blocks) * kBlockRows;
      for (int b = 0; b < kBoxes; ++b) {
        const uint32_t dst = base + s * kBlockBytes + b * kBoxBytes;
        if (!mc) {
          asm volatile(
              "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(dst),
              "l"(reinterpret_cast<uint64_t>(&map)), "r"(b * 64), "r"(row), "r"(fb)
              : "memory");
        } else if (b % 2 == rank) {
          asm volatile(
              "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {%2, %3}], [%4], %5;" ::"r"(dst),
              "l"(reinterpret_cast<uint64_t>(&map)), "r"(b * 64), "r"(row), "r"(fb), "h"(uint16_t(3))
              : "memory");
        }
      }
    }
  } else if (threadIdx.x == 32) {
    for (int i = 0; i < blocks_a_piece; ++i) {
      const int s = i % stages;
      wait_parity(smem_addr(&full[s]), (i / stages) & 1);
      const uint32_t eb = smem_addr(&empty[s]);
      asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(eb) : "memory");
      if (mc) {
        uint32_t remote;
        asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(eb), "r"(rank ^ 1));
        asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];" ::"r"(remote) : "memory");
      }
    }
  }
  if (mc) cluster_sync();
}

int main() {
  void* cache;
  const size_t rows = size_t(kCacheBlocks) * kBlockRows;
  CHECK(cudaMalloc(&cache, rows * 576 * 2));
  CHECK(cudaMemset(cache, 0, rows * 576 * 2));
  CUtensorMap map;
  cuuint64_t dims[2] = {576, rows}, strides[1] = {576 * 2};
  cuuint32_t box[2] = {64, kBlockRows}, es[2] = {1, 1};
  CHECK(cuTensorMapEncodeTiled(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, cache, dims, strides, box, es,
                               CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
  int sms;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  CHECK(cudaFuncSetAttribute(feed, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  CHECK(cudaFuncSetAttribute(feed, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  const char* names[] = {"pair", "multicast", "solo"};
  std::printf("%-10s %-6s %6s %8s %10s %12s %12s\n", "layout", "span", "stages", "CTAs", "us", "smem TB/s", "L2 TB/s");
  for (int span : {kCacheBlocks, 256}) {
    for (int layout : {kPair, kMulticast, kSolo}) {
      for (int stages : {2, 3}) {
        const int per = layout == kSolo ? 1 : 2;
        const int pieces = sms / per;
        const int blocks_a_piece = kCacheBlocks / pieces;
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(pieces * per);
        cfg.blockDim = dim3(128);
        cfg.dynamicSmemBytes = kSmem;
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeClusterDimension;
        attr[0].val.clusterDim.x = layout == kMulticast ? 2 : 1;
        attr[0].val.clusterDim.y = 1;
        attr[0].val.clusterDim.z = 1;
        cfg.attrs = attr;
        cfg.numAttrs = 1;
        std::vector<float> us;
        for (int rep = 0; rep < 8; ++rep) {
          CHECK(cudaEventRecord(e0));
          CHECK(cudaLaunchKernelEx(&cfg, feed, map, layout, stages, blocks_a_piece, span));
          CHECK(cudaEventRecord(e1));
          CHECK(cudaEventSynchronize(e1));
          float ms;
          CHECK(cudaEventElapsedTime(&ms, e0, e1));
          if (rep > 0) us.push_back(ms * 1000.f);
        }
        CHECK(cudaGetLastError());
        std::sort(us.begin(), us.end());
        const double t = us[us.size() / 2];
        const double delivered = double(pieces) * per * blocks_a_piece * kBlockBytes;
        const double requested = layout == kMulticast ? delivered / 2 : delivered;
        std::printf("%-10s %-6d %6d %8d %10.1f %12.2f %12.2f\n", names[layout], span, stages, pieces * per, t,
                    delivered / t * 1e-6, requested / t * 1e-6);
      }
    }
  }
  return 0;
}
