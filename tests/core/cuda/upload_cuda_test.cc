// upload_async on a real GPU: many uploads queued back to back with no synchronisation between
// them (behind a kernel that keeps the stream busy, so the host runs far ahead of the copies and
// wraps the staging ring several times), then every device copy compared with its source. A ring
// that handed out staging bytes before their copy ran would show up as a mismatch. Also: the
// upload refuses a stream under capture and leaves the capture intact.
#include "core/upload.h"

#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "core/cuda_check.h"

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

class UploadCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU visible";
    MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  void TearDown() override {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  cudaStream_t stream_ = nullptr;
};

std::vector<int32_t> host_copy(const Tensor& t) {
  std::vector<int32_t> out(static_cast<size_t>(t.numel()));
  MLA_CUDA_CHECK(cudaMemcpy(out.data(), t.raw(), t.nbytes(), cudaMemcpyDeviceToHost));
  return out;
}

// Sizes from 1 value to 3 MiB, 600 uploads: ~ 250 MiB through a ring of 4 x 4 MiB chunks, and
// single uploads past a chunk's worth of free room. Each source is overwritten right after its
// upload returns (the call must have taken its own copy).
TEST_F(UploadCuda, ManyUploadsBackToBackArriveIntact) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int64_t> small(1, 4096), large(1, 768 * 1024);
  std::vector<std::vector<int32_t>> expected;
  std::vector<Tensor> uploaded;
  const Stream stream{stream_};
  for (int round = 0; round < 3; ++round) {
    hold_stream(stream_, 100);  // the copies below wait behind it
    for (int i = 0; i < 200; ++i) {
      const int64_t n = i % 10 == 0 ? large(rng) : small(rng);
      std::vector<int32_t> values(static_cast<size_t>(n));
      for (int32_t& v : values) v = static_cast<int32_t>(rng());
      uploaded.push_back(upload_async(values, stream));
      expected.push_back(values);
      std::fill(values.begin(), values.end(), -1);  // the caller's buffer is free once the call returns
    }
  }
  MLA_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (size_t i = 0; i < uploaded.size(); ++i) {
    ASSERT_EQ(uploaded[i].dtype(), DType::kI32);
    ASSERT_EQ(uploaded[i].device(), Device::kCUDA);
    ASSERT_EQ(host_copy(uploaded[i]), expected[i]) << "upload " << i << " of " << uploaded.size();
  }
}

// The same on the legacy default stream (the model's stream unless graphs give it its own).
TEST_F(UploadCuda, LegacyStream) {
  std::vector<std::vector<int32_t>> expected;
  std::vector<Tensor> uploaded;
  for (int i = 0; i < 300; ++i) {
    std::vector<int32_t> values(static_cast<size_t>(1 + (i * 7919) % 300000), i);
    values.back() = -i;
    uploaded.push_back(upload_async(values, Stream{}));
    expected.push_back(std::move(values));
  }
  MLA_CUDA_CHECK(cudaDeviceSynchronize());
  for (size_t i = 0; i < uploaded.size(); ++i) ASSERT_EQ(host_copy(uploaded[i]), expected[i]) << "upload " << i;
}

TEST_F(UploadCuda, RefusedUnderCapture) {
  MLA_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
  const std::vector<int32_t> values = {1, 2, 3};
  EXPECT_THROW(upload_async(values, Stream{stream_}), Error);
  hold_stream(stream_, 1);  // the capture is still usable
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
  cudaGraphDestroy(graph);
}

}  // namespace
}  // namespace mlaserve
