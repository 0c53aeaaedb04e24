// copy_bytes from pageable host memory to the GPU (what Tensor::to(kCUDA) and the op tests'
// uploads run) on a real GPU: when the call returns, the bytes must be in place for work queued
// next on a non-blocking stream. cudaMemcpy alone returns once the bytes are staged, their DMA
// still queued on the legacy default stream, which a non-blocking stream does not wait for (the
// likely cause of a CUTLASS grouped GEMM test failure, bench/NOTES-engine.md, fourteenth session). Each case reads the destination
// back on a non-blocking stream right after the call, into pinned memory, and compares.
//  - Behind a blocking stream held by a host function: the legacy stream's copy waits for it
//    (implicit synchronisation), so a copy that returned early has surely not landed.
//  - 256 MiB at once: the call returns when the last chunk is staged; the tail checked.
//  - copy_bytes_2d, behind a held blocking stream as well.
#include "core/memory.h"

#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/tensor.h"

namespace mlaserve {
namespace {

// Holds the stream for `ms` milliseconds: what is queued behind it waits.
void hold_stream(cudaStream_t stream, int ms) {
  static int held_ms = 0;
  held_ms = ms;
  MLA_CUDA_CHECK(cudaLaunchHostFunc(
      stream, [](void* p) { std::this_thread::sleep_for(std::chrono::milliseconds(*static_cast<int*>(p))); },
      &held_ms));
}

class CopyBytesCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU visible";
    MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&reader_, cudaStreamNonBlocking));
    MLA_CUDA_CHECK(cudaStreamCreate(&blocking_));
    MLA_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&pinned_), kMaxRead));
  }
  void TearDown() override {
    if (pinned_ != nullptr) cudaFreeHost(pinned_);
    if (reader_ != nullptr) cudaStreamDestroy(reader_);
    if (blocking_ != nullptr) cudaStreamDestroy(blocking_);
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
  cudaStream_t reader_ = nullptr;    // non-blocking: not ordered after the legacy stream
  cudaStream_t blocking_ = nullptr;  // blocking: the legacy stream's work waits for it
  uint8_t* pinned_ = nullptr;        // [kMaxRead] u8, pinned
};

std::vector<uint8_t> pattern(size_t bytes, uint8_t seed) {
  std::vector<uint8_t> v(bytes);
  for (size_t i = 0; i < bytes; ++i) v[i] = static_cast<uint8_t>(seed + 1 + i % 251);  // never all zero
  return v;
}

TEST_F(CopyBytesCuda, HostToDeviceLandedBehindABusyBlockingStream) {
  for (int round = 0; round < 3; ++round) {
    const std::vector<uint8_t> host = pattern(1024, static_cast<uint8_t>(round));  // [1024] u8
    Tensor dev = zeroed_gpu(1024);
    hold_stream(blocking_, 200);
    copy_bytes(dev.raw(), Device::kCUDA, host.data(), Device::kCPU, host.size());
    EXPECT_EQ(read_now(dev.raw(), host.size()), host) << "round " << round << ": read before the copy landed";
    MLA_CUDA_CHECK(cudaDeviceSynchronize());
  }
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

TEST_F(CopyBytesCuda, HostToDevice2dLandedBehindABusyBlockingStream) {
  constexpr size_t kRows = 16, kWidth = 96, kSrcPitch = 128;
  const std::vector<uint8_t> host = pattern(kRows * kSrcPitch, 7);  // [16, 128] u8, 96 columns copied
  Tensor dev = zeroed_gpu(static_cast<int64_t>(kRows * kWidth));   // [16, 96] u8
  hold_stream(blocking_, 200);
  copy_bytes_2d(dev.raw(), kWidth, Device::kCUDA, host.data(), kSrcPitch, Device::kCPU, kWidth, kRows);
  const std::vector<uint8_t> got = read_now(dev.raw(), kRows * kWidth);
  for (size_t r = 0; r < kRows; ++r) {
    EXPECT_EQ(std::memcmp(got.data() + r * kWidth, host.data() + r * kSrcPitch, kWidth), 0) << "row " << r;
  }
  MLA_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace
}  // namespace mlaserve
