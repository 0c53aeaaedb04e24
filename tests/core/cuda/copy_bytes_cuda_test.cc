// copy_bytes from pageable host memory to the GPU (what Tensor::to(kCUDA) and the op tests'
// uploads run) on a real GPU: when the call returns, the bytes must be in place for work queued
// next on a non-blocking stream. cudaMemcpy alone returns once the last bytes are staged, their
// DMA still queued on the legacy default stream, which a non-blocking stream does not wait for
// (the likely cause of a CUTLASS grouped GEMM test failure, bench/NOTES-engine.md, fourteenth
// session). The cases read the destination back on a non-blocking stream right after the call,
// into pinned memory, and compare: the tail of a 256 MiB copy (the window is the last chunk's
// DMA), and copy_bytes_2d. Without the wait the window is short, so these catch a regression
// only some of the time; not reproduced on a GPU yet.
#include "core/memory.h"

#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/tensor.h"

namespace mlaserve {
namespace {

class CopyBytesCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU visible";
    MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&reader_, cudaStreamNonBlocking));
    MLA_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&pinned_), kMaxRead));
  }
  void TearDown() override {
    if (pinned_ != nullptr) cudaFreeHost(pinned_);
    if (reader_ != nullptr) cudaStreamDestroy(reader_);
  }

  // A device buffer of `bytes` zeros, the zeros in place.
  static Tensor zeroed_gpu(int64_t bytes) {
    Tensor t = Tensor::empty({bytes}, DType::kU8, Device::kCUDA);
    MLA_CUDA_CHECK(cudaMemset(t.raw(), 0, static_cast<size_t>(bytes)));
    MLA_CUDA_CHECK(cudaDeviceSynchronize());
    return t;
  }

  // `bytes` (<= kMaxRead) bytes of `src` (device), read on the non-blocking stream queued right
  // now, into pinned memory allocated up front (no allocation that could synchronise the device).
  std::vector<uint8_t> read_now(const void* src, size_t bytes) const {
    MLA_CHECK(bytes <= kMaxRead, "read_now: {} bytes, at most {}", bytes, kMaxRead);
    MLA_CUDA_CHECK(cudaMemcpyAsync(pinned_, src, bytes, cudaMemcpyDeviceToHost, reader_));
    MLA_CUDA_CHECK(cudaStreamSynchronize(reader_));
    return std::vector<uint8_t>(pinned_, pinned_ + bytes);
  }

  static constexpr size_t kMaxRead = 4096;
  cudaStream_t reader_ = nullptr;  // non-blocking: not ordered after the legacy stream
  uint8_t* pinned_ = nullptr;      // [kMaxRead] u8, pinned
};

std::vector<uint8_t> pattern(size_t bytes, uint8_t seed) {
  std::vector<uint8_t> v(bytes);
  for (size_t i = 0; i < bytes; ++i) v[i] = static_cast<uint8_t>(seed + 1 + i % 251);  // never all zero
  return v;
}

TEST_F(CopyBytesCuda, LargeHostToDeviceTailLanded) {
  constexpr size_t kBytes = size_t{256} << 20, kTail = 4096;
  for (int round = 0; round < 3; ++round) {
    const std::vector<uint8_t> host = pattern(kBytes, static_cast<uint8_t>(round));  // [256 Mi] u8
    Tensor dev = zeroed_gpu(static_cast<int64_t>(kBytes));
    copy_bytes(dev.raw(), Device::kCUDA, host.data(), Device::kCPU, kBytes);
    const std::vector<uint8_t> tail = read_now(static_cast<const uint8_t*>(dev.raw()) + kBytes - kTail, kTail);
    EXPECT_EQ(std::memcmp(tail.data(), host.data() + kBytes - kTail, kTail), 0)
        << "round " << round << ": the last " << kTail << " bytes read before they landed";
  }
}

TEST_F(CopyBytesCuda, LargeHostToDevice2dTailLanded) {
  constexpr size_t kRows = 4096, kWidth = size_t{64} << 10, kSrcPitch = kWidth + 128, kTail = 4096;
  const std::vector<uint8_t> host = pattern(kRows * kSrcPitch, 7);     // [4096, 64 Ki + 128] u8
  Tensor dev = zeroed_gpu(static_cast<int64_t>(kRows * kWidth));        // [4096, 64 Ki] u8
  copy_bytes_2d(dev.raw(), kWidth, Device::kCUDA, host.data(), kSrcPitch, Device::kCPU, kWidth, kRows);
  const std::vector<uint8_t> tail = read_now(static_cast<const uint8_t*>(dev.raw()) + kRows * kWidth - kTail, kTail);
  EXPECT_EQ(std::memcmp(tail.data(), host.data() + (kRows - 1) * kSrcPitch + kWidth - kTail, kTail), 0)
      << "the last row's last " << kTail << " bytes read before they landed";
}

}  // namespace
}  // namespace mlaserve
