#include "copy_bandwidth.h"

#include <cstdint>

#include "bench_timing.h"
#include "core/cuda_check.h"
#include "core/tensor.h"

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

}  // namespace mlaserve::bench
