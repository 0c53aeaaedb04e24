#include "copy_bandwidth.h"

#include <algorithm>
#include <cstdint>

#include "bench_timing.h"
#include "core/cuda_check.h"
#include "core/tensor.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/sm90_ptx.cuh"

namespace mlaserve::bench {
namespace {

constexpr int64_t kBytes = int64_t{1} << 30;
constexpr int kWarmup = 3, kReps = 20;

__global__ void copy16(const int4* src, int4* dst, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = src[i];
  }
}

__device__ int g_read_sink;

// Plain loads: each thread folds four independent 16-byte loads a round; the fold is stored only if
// it hits a value no data here produces, which the compiler cannot know, so no load is dropped.
__global__ void read16(const int4* __restrict__ src, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  int acc = 0;
  for (; i + 3 * stride < n; i += 4 * stride) {
    const int4 a = __ldcs(src + i), b = __ldcs(src + i + stride), c = __ldcs(src + i + 2 * stride),
               d = __ldcs(src + i + 3 * stride);
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < n; i += stride) {
    const int4 a = __ldcs(src + i);
    acc ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  if (acc == 0x7FEDCBA9) g_read_sink = acc;
}

// Bulk copies: one thread a CTA streams the CTA's contiguous share of the buffer through a ring of
// kReadSlots shared-memory slots of kReadChunk bytes (the copy engine of TMA, as the GEMMs load).
constexpr int kReadSlots = 6, kReadChunk = 16384;

__global__ void read_bulk(const uint8_t* __restrict__ src, int64_t bytes) {
  extern __shared__ __align__(128) uint8_t ring[];  // [kReadSlots][kReadChunk]
  __shared__ __align__(8) uint64_t bars[kReadSlots];
  const int64_t share = (bytes / 16 + gridDim.x - 1) / gridDim.x * 16;
  const int64_t begin = blockIdx.x * share, end = min(bytes, begin + share);
  if (begin >= end) return;
  const uint32_t base = ops::sm90::ptx::smem_addr(ring), bar0 = ops::sm90::ptx::smem_addr(bars);
  for (int s = 0; s < kReadSlots; ++s) ops::sm90::ptx::mbarrier_init(bar0 + 8 * s, 1);
  ops::sm90::ptx::mbarrier_init_fence();
  const int chunks = static_cast<int>((end - begin + kReadChunk - 1) / kReadChunk);
  for (int i = 0; i < chunks; ++i) {
    const int s = i % kReadSlots;
    const uint32_t bar = bar0 + 8 * s;
    if (i >= kReadSlots) ops::sm90::ptx::mbarrier_wait(bar, (i / kReadSlots - 1) & 1);
    const int64_t at = begin + static_cast<int64_t>(i) * kReadChunk;
    const auto n = static_cast<uint32_t>(min(static_cast<int64_t>(kReadChunk), end - at));
    ops::sm90::ptx::mbarrier_arrive_expect_bytes(bar, n);
    ops::sm90::ptx::bulk_load(base + s * kReadChunk, src + at, n, bar);
  }
  for (int i = max(0, chunks - kReadSlots); i < chunks; ++i) {
    ops::sm90::ptx::mbarrier_wait(bar0 + 8 * (i % kReadSlots), (i / kReadSlots) & 1);
  }
}

// Bytes read + written per second (GB/s) of copy(src, dst, bytes), enqueued on stream.
template <class Copy>
double copy_gbps(cudaStream_t stream, Copy copy) {
  Tensor a = Tensor::empty({kBytes}, DType::kU8, Device::kCUDA), b = Tensor::empty({kBytes}, DType::kU8, Device::kCUDA);
  MLA_CUDA_CHECK(cudaMemsetAsync(a.raw(), 0x3C, kBytes, stream));
  Timer timer;
  auto run = [&](int) { copy(a.raw(), b.raw()); };
  timer.median_us(stream, kWarmup, run);
  return 2.0 * static_cast<double>(kBytes) / timer.median_us(stream, kReps, run) / 1e3;
}

}  // namespace

double memcpy_gbps(cudaStream_t stream) {
  return copy_gbps(stream, [&](const void* src, void* dst) {
    MLA_CUDA_CHECK(cudaMemcpyAsync(dst, src, kBytes, cudaMemcpyDeviceToDevice, stream));
  });
}

double copy_kernel_gbps(cudaStream_t stream) {
  return copy_gbps(stream, [&](const void* src, void* dst) {
    copy16<<<1024, 256, 0, stream>>>(static_cast<const int4*>(src), static_cast<int4*>(dst), kBytes / 16);
    MLA_CUDA_CHECK_LAUNCH();
  });
}

void stream_read(const void* p, int64_t bytes, ReadWay way, cudaStream_t stream) {
  MLA_CHECK(bytes % 16 == 0 && reinterpret_cast<uintptr_t>(p) % 16 == 0,
            "stream_read: {} bytes at {} are not 16-byte units", bytes, p);
  const int sms = ops::gpu::device_sm_count();
  if (way == ReadWay::kLoads) {
    read16<<<8 * sms, 256, 0, stream>>>(static_cast<const int4*>(p), bytes / 16);
  } else {
    constexpr int kSmem = kReadSlots * kReadChunk;
    static const bool attributes_set = [] {
      MLA_CUDA_CHECK(cudaFuncSetAttribute(read_bulk, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
      return true;
    }();
    (void)attributes_set;
    read_bulk<<<2 * sms, 1, kSmem, stream>>>(static_cast<const uint8_t*>(p), bytes);
  }
  MLA_CUDA_CHECK_LAUNCH();
}

}  // namespace mlaserve::bench
