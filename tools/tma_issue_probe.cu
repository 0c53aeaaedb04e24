// What does a TMA copy cost the thread that issues it? One CTA an SM (or one CTA alone); thread 0
// issues `boxes` copies of [64 rows x 64 bf16] column blocks of a [rows, 576] bf16 tensor (the
// latent cache's layout) into shared memory, either one 8 KB box per instruction (2D map) or four
// column blocks per instruction (3D map: channels, rows, column blocks; 32 KB), then waits for
// them. Prints the median cycles a copy instruction takes to issue and the cycles until all
// landed, per CTA.
//
//   nvcc -O2 -arch=sm_90a -o /tmp/tma_probe tools/tma_issue_probe.cu -lcuda
//   /tmp/tma_probe
//
// Result (one H200, 2026-12-03; bench/NOTES-mla-decode.md, the fifty-second session): a copy takes
// its thread a median 94 cycles to issue, 8 KB or 32 KB alike, alone or with every SM copying; p90
// 146 (2-D, one CTA), 462 (2-D, 132 CTAs), 260 (3-D). The cost is per copy instruction, not per byte.
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "probe_check.h"

constexpr int kRows = 1 << 20;  // 1.2 GB of cache rows: every copy misses L2
constexpr int kBoxes = 36;      // 8 KB column blocks a CTA copies: four cache blocks' nine

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__global__ void __launch_bounds__(128, 1) probe(const __grid_constant__ CUtensorMap map2, const __grid_constant__ CUtensorMap map3,
                                                int mode, int row0_stride, unsigned long long* out) {
  extern __shared__ __align__(1024) uint8_t smem[];
  __shared__ uint64_t bar;
  const uint32_t s = smem_addr(smem), b = smem_addr(&bar);
  if (threadIdx.x == 0) {
    asm volatile("mbarrier.init.shared.b64 [%0], 1;" ::"r"(b));
    asm volatile("fence.mbarrier_init.release.cluster;");
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  const int row = (blockIdx.x * row0_stride) % (kRows - 64 * 8);
  const int copies = mode == 0 ? kBoxes : kBoxes / 4;
  const uint32_t bytes = kBoxes * 8192;
  asm volatile("mbarrier.arrive.expect_tx.shared.b64 _, [%0], %1;" ::"r"(b), "r"(bytes));
  unsigned long long t[kBoxes + 2];
  t[0] = clock64();
  for (int i = 0; i < copies; ++i) {
    // copy i: column blocks (mode 0: i % 9; mode 1: 4 (i % 2) .. + 3) of block i / (mode 0 ? 9 : 2)
    const uint32_t dst = s + (i % 8) * (mode == 0 ? 8192 : 32768) % (64 * 1024);
    if (mode == 0) {
      const int cb = i % 9, r = row + 64 * (i / 9);
      asm volatile(
          "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(dst),
          "l"(reinterpret_cast<uint64_t>(&map2)), "r"(cb * 64), "r"(r), "r"(b)
          : "memory");
    } else {
      const int cb = 4 * (i % 2), r = row + 64 * (i / 2);
      asm volatile(
          "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];" ::"r"(dst),
          "l"(reinterpret_cast<uint64_t>(&map3)), "r"(0), "r"(r), "r"(cb), "r"(b)
          : "memory");
    }
    t[i + 1] = clock64();
  }
  uint32_t done = 0;
  while (!done) {
    asm volatile(
        "{ .reg .pred p; mbarrier.try_wait.parity.shared.b64 p, [%1], 0; selp.u32 %0, 1, 0, p; }"
        : "=r"(done)
        : "r"(b));
  }
  const unsigned long long end = clock64();
  unsigned long long* o = out + blockIdx.x * (kBoxes + 2);
  for (int i = 0; i < copies; ++i) o[i] = t[i + 1] - t[i];
  o[kBoxes] = end - t[0];
  o[kBoxes + 1] = copies;
}

int main() {
  void* cache;
  CHECK(cudaMalloc(&cache, size_t(kRows) * 576 * 2));
  CHECK(cudaMemset(cache, 0, size_t(kRows) * 576 * 2));
  CUtensorMap map2, map3;
  {
    cuuint64_t dims[2] = {576, kRows}, strides[1] = {576 * 2};
    cuuint32_t box[2] = {64, 64}, es[2] = {1, 1};
    CHECK(cuTensorMapEncodeTiled(&map2, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, cache, dims, strides, box, es,
                                 CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                 CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
  }
  {
    // dims: channels within a column block, rows, column blocks (stride 128 B): a box of four
    // column blocks lands as four [64 rows][128 B] tiles, one after the other.
    cuuint64_t dims[3] = {64, kRows, 9}, strides[2] = {576 * 2, 128};
    cuuint32_t box[3] = {64, 64, 4}, es[3] = {1, 1, 1};
    CHECK(cuTensorMapEncodeTiled(&map3, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, cache, dims, strides, box, es,
                                 CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                 CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
  }
  int sms;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  unsigned long long* out;
  CHECK(cudaMalloc(&out, sizeof(unsigned long long) * sms * (kBoxes + 2)));
  const int smem = 64 * 1024;
  CHECK(cudaFuncSetAttribute(probe, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  for (int mode = 0; mode < 2; ++mode) {
    for (int ctas : {1, sms}) {
      for (int rep = 0; rep < 3; ++rep) {
        probe<<<ctas, 128, smem>>>(map2, map3, mode, 4099 * 64 + rep * 777, out);
        CHECK(cudaDeviceSynchronize());
      }
      std::vector<unsigned long long> h(size_t(ctas) * (kBoxes + 2));
      CHECK(cudaMemcpy(h.data(), out, h.size() * 8, cudaMemcpyDeviceToHost));
      std::vector<unsigned long long> issue, total;
      const int copies = int(h[kBoxes + 1]);
      for (int c = 0; c < ctas; ++c) {
        for (int i = 0; i < copies; ++i) issue.push_back(h[c * (kBoxes + 2) + i]);
        total.push_back(h[c * (kBoxes + 2) + kBoxes]);
      }
      std::sort(issue.begin(), issue.end());
      std::sort(total.begin(), total.end());
      std::printf("%s, %3d CTAs: %2d copies of %2d KB; issue cycles a copy: median %llu, p90 %llu, max %llu; "
                  "all landed after %llu cycles (median CTA)\n",
                  mode == 0 ? "2D 8 KB boxes " : "3D 32 KB boxes", ctas, copies, mode == 0 ? 8 : 32,
                  issue[issue.size() / 2], issue[issue.size() * 9 / 10], issue.back(), total[total.size() / 2]);
    }
  }
  return 0;
}
