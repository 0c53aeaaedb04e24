// How close to the HBM's rate can the MoE decode GEMM's weight stream run, and does the layout of
// the weights matter? No arithmetic: persistent CTAs (128 threads, CTAs an SM set by their shared
// memory) stream the weight rows of a V3 TP8 rank's gate_up at 8 tokens (456 slabs of 64 rows x K =
// 7168 bytes, e4m3: ~57 experts x 512 rows, 209 MB) in 8 KB stages through a cp.async ring and XOR
// what lands, as moe_grouped_gemm_fp8_sm89.cuh's decode tile reads its B operand. Geometries:
//   rmRxC  the checkpoint's row-major rows, a stage R rows x C bytes (rm64x128: the kernel's own);
//   tlRt   the same 64-row slabs stored as [64 / Rt][K / 128][Rt][128]: a stage (64 rows x 128
//          bytes) is 64 / Rt contiguous chunks of Rt x 128 bytes.
// The work is split into equal runs of stages, one a CTA. Two buffers alternate so that every timed
// pass reads from HBM (209 MB against the 50 MB L2).
//
//   nvcc -O2 -std=c++17 -gencode arch=compute_90a,code=sm_90a -o hbm_stream_probe tools/hbm_stream_probe.cu
//   ./hbm_stream_probe
//
// Prints, for each geometry, CTAs, CTAs an SM and stages, the median time of 15 passes and the bytes
// per second.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "probe_check.h"

constexpr int kRows = 64;
constexpr int kThreads = 128;
constexpr int kStageBytes = 8192;

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void commit() { asm volatile("cp.async.commit_group;"); }
template <int N>
__device__ __forceinline__ void wait_groups() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

// A geometry's stage units: a unit is one stage of one slab. rm(R, C): R rows x C bytes of a
// row-major slab of R rows; tl(Rt): 64 rows x 128 bytes of a slab of 64 rows stored as
// [64 / Rt][K / 128][Rt][128] (chunks of Rt rows x 128 bytes, contiguous).
struct Geometry {
  bool tiled;
  int rows;   // R (rm) or 64 (tl)
  int cols;   // C (rm) or 128 (tl)
  int chunk;  // tl: Rt
  int64_t k;
  __host__ __device__ int64_t steps() const { return k / cols; }
  // 16-byte piece i's offset within its slab at step 0, and the bytes a step moves it by.
  __device__ int64_t piece_offset(int i) const {
    if (!tiled) return (i / (cols / 16)) * k + (i % (cols / 16)) * 16;
    return (i / (chunk * 8)) * (k / 128) * chunk * 128 + (i % (chunk * 8)) * 16;
  }
  __host__ __device__ int64_t step_bytes() const { return tiled ? chunk * 128 : cols; }
};

// Grid: persistent CTAs of kThreads; CTA b streams stage units [b·U/G, (b+1)·U/G) of w (U = slabs x
// steps), each 8 KB, through `kStages` slots (kStages - 1 copies in flight).
template <int kStages>
__global__ void __launch_bounds__(kThreads) stream(const uint8_t* w, Geometry g, int64_t units, uint32_t* sink) {
  extern __shared__ __align__(1024) uint8_t smem[];
  const int tid = threadIdx.x;
  const int64_t u0 = units * blockIdx.x / gridDim.x, u1 = units * (blockIdx.x + 1) / gridDim.x;
  const int steps = static_cast<int>(u1 - u0);
  uint32_t acc = 0;
  constexpr int kPieces = kStageBytes / 16 / kThreads;  // this thread's: pieces tid + j · kThreads
  int64_t offset[kPieces];
#pragma unroll
  for (int j = 0; j < kPieces; ++j) offset[j] = g.piece_offset(tid + j * kThreads);
  const int steps_a_slab = static_cast<int>(g.steps());
  auto load = [&](int step) {
    const uint32_t base = smem_addr(smem + (step % kStages) * kStageBytes);
    const int u = static_cast<int>(u0) + step, slab = u / steps_a_slab;
    const uint8_t* src = w + slab * g.rows * g.k + (u - slab * steps_a_slab) * g.step_bytes();
#pragma unroll
    for (int j = 0; j < kPieces; ++j) cp_async_16(base + (tid + j * kThreads) * 16, src + offset[j]);
  };
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) load(s);
    commit();
  }
  for (int step = 0; step < steps; ++step) {
    wait_groups<kStages - 2>();
    __syncthreads();
    if (step + kStages - 1 < steps) load(step + kStages - 1);
    commit();
    const uint4* st = reinterpret_cast<const uint4*>(smem + (step % kStages) * kStageBytes);
#pragma unroll
    for (int j = 0; j < kPieces; ++j) acc ^= st[tid + j * kThreads].x ^ st[tid + j * kThreads].w;
  }
  wait_groups<0>();
  if (acc == 0x12345678u) sink[blockIdx.x] = acc;  // keeps the reads; never true for these bytes
}

using Kernel = void (*)(const uint8_t*, Geometry, int64_t, uint32_t*);

Kernel kernel_for(int stages) {
  switch (stages) {
    case 2: return stream<2>;
    case 3: return stream<3>;
    case 4: return stream<4>;
    case 6: return stream<6>;
    default: return stream<8>;
  }
}

int main() {
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  const int64_t k = 7168;
  const int max_ctas = 6 * sms;
  const size_t buf_bytes = static_cast<size_t>(max_ctas) * kRows * k;
  uint8_t* buf[2];
  for (auto& b : buf) {
    CHECK(cudaMalloc(&b, buf_bytes));
    CHECK(cudaMemset(b, 0x5a, buf_bytes));
  }
  uint32_t* sink;
  CHECK(cudaMalloc(&sink, max_ctas * 4));
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  std::printf("# %s, %d SMs; K = %lld, slabs of 64 rows (448 KB)\n", prop.name, sms, static_cast<long long>(k));
  std::printf("%-10s %6s %6s %6s %10s %10s\n", "pattern", "ctas", "per_sm", "stages", "us", "GB/s");
  struct Case {
    const char* name;
    Geometry g;
    int ctas, per_sm, stages;
  };
  std::vector<Case> cases;
  const int64_t rows = 456 * kRows;  // V3 TP8 rank's gate_up at 8 tokens: ~57 experts x 512 rows
  for (int ctas : {456, 4 * sms}) {
    cases.push_back({"rm64x128", {false, 64, 128, 0, k}, ctas, 4, 4});
    cases.push_back({"rm32x256", {false, 32, 256, 0, k}, ctas, 4, 4});
    cases.push_back({"rm16x512", {false, 16, 512, 0, k}, ctas, 4, 4});
    cases.push_back({"rm8x1024", {false, 8, 1024, 0, k}, ctas, 4, 4});
    for (int rt : {8, 16, 32, 64}) {
      static const char* const names[] = {"tl8", "tl16", "tl32", "tl64"};
      cases.push_back({names[rt == 8 ? 0 : rt == 16 ? 1 : rt == 32 ? 2 : 3], {true, 64, 128, rt, k}, ctas, 4, 4});
    }
  }
  cases.push_back({"rm64x128", {false, 64, 128, 0, k}, 4 * sms, 4, 6});
  cases.push_back({"tl64", {true, 64, 128, 64, k}, 4 * sms, 4, 6});
  cases.push_back({"rm64x128", {false, 64, 128, 0, k}, 3 * sms, 3, 6});
  cases.push_back({"rm64x128", {false, 64, 128, 0, k}, 2 * sms, 2, 8});
  cases.push_back({"tl64", {true, 64, 128, 64, k}, 2 * sms, 2, 8});
  for (const Case& c : cases) {
    const Kernel kern = kernel_for(c.stages);
    const int smem = std::max(c.stages * kStageBytes, static_cast<int>(200 * 1024 / c.per_sm));
    CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    const int64_t units = rows / c.g.rows * c.g.steps();
    std::vector<float> times;
    for (int it = 0; it < 18; ++it) {
      CHECK(cudaEventRecord(e0));
      kern<<<c.ctas, kThreads, smem>>>(buf[it & 1], c.g, units, sink);
      CHECK(cudaEventRecord(e1));
      CHECK(cudaEventSynchronize(e1));
      float ms = 0;
      CHECK(cudaEventElapsedTime(&ms, e0, e1));
      if (it >= 3) times.push_back(ms);
    }
    CHECK(cudaGetLastError());
    std::sort(times.begin(), times.end());
    const double us = times[times.size() / 2] * 1e3;
    const double bytes = static_cast<double>(rows) * k;
    std::printf("%-10s %6d %6d %6d %10.1f %10.0f\n", c.name, c.ctas, c.per_sm, c.stages, us, bytes / us / 1e3);
  }
  return 0;
}
