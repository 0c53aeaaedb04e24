// Helpers for the tests of the small CUDA ops against their CPU references: a fixture that skips
// without an sm_90 GPU and owns a non-default stream, poisoned device outputs, and host copies
// taken after a checked synchronisation (so that a kernel fault fails the test that caused it).
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "../op_test_util.h"
#include "core/cuda_check.h"
#include "core/memory.h"
#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops::testing {

class CudaOpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU visible: the CUDA op tests need an sm_90 GPU";
    cudaDeviceProp prop{};
    MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    if (prop.major != 9) GTEST_SKIP() << "the CUDA ops are built for sm_90a; this GPU is " << prop.name;
    // A blocking stream: it waits for the legacy default stream, where Tensor::fill_bytes and
    // Tensor::to queue their memset and copies.
    MLA_CUDA_CHECK(cudaStreamCreate(&cuda_stream_));
    stream_.cuda = cuda_stream_;
  }
  void TearDown() override {
    if (cuda_stream_ != nullptr) MLA_CUDA_CHECK(cudaStreamDestroy(cuda_stream_));
  }

  // Waits for the test's stream and reports any asynchronous kernel error, then copies to the host.
  Tensor to_host(const Tensor& t) const {
    MLA_CUDA_CHECK(cudaStreamSynchronize(cuda_stream_));
    MLA_CUDA_CHECK(cudaGetLastError());
    return t.to(Device::kCPU);
  }

  Stream stream() const { return stream_; }
  cudaStream_t cuda_stream() const { return cuda_stream_; }

 private:
  cudaStream_t cuda_stream_ = nullptr;
  Stream stream_;
};

// A new GPU tensor with every byte 0xFF: NaN for bf16 and f32, -1 for integers.
inline Tensor poisoned_gpu(const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype, Device::kCUDA);
  t.fill_bytes(0xFF);
  return t;
}

// The values of a host tensor (any float dtype, i32, i64) as floats.
inline std::vector<float> values(const Tensor& host) { return host.to_vector(); }

inline int64_t count_nan(const std::vector<float>& v) {
  int64_t n = 0;
  for (float x : v) n += std::isnan(x) ? 1 : 0;
  return n;
}

// Bitwise view of a host bf16 tensor.
inline std::vector<uint16_t> bf16_bits(const Tensor& host) {
  const bfloat16* p = host.data<bfloat16>();
  std::vector<uint16_t> bits(static_cast<size_t>(host.numel()));
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = p[i].bits;
  return bits;
}

// Elements that differ (exact comparison, for copies); every element when the sizes differ. A
// count rather than EXPECT_EQ on the vectors, whose failure message would print millions of
// values.
template <typename T>
int64_t mismatches(const std::vector<T>& got, const std::vector<T>& want) {
  if (got.size() != want.size()) return static_cast<int64_t>(std::max(got.size(), want.size()));
  int64_t n = 0;
  for (size_t i = 0; i < got.size(); ++i) n += got[i] != want[i] ? 1 : 0;
  return n;
}

// Per-row relative L2 error ||got - want|| / ||want|| over rows of `width`; the worst row.
inline double worst_row_rel_l2(const std::vector<float>& got, const std::vector<float>& want, int64_t width) {
  double worst = 0.0;
  for (size_t r = 0; r + static_cast<size_t>(width) <= want.size(); r += static_cast<size_t>(width)) {
    double num = 0.0, den = 0.0;
    for (int64_t c = 0; c < width; ++c) {
      const double d = static_cast<double>(got[r + c]) - want[r + c];
      num += d * d;
      den += static_cast<double>(want[r + c]) * want[r + c];
    }
    worst = std::max(worst, std::sqrt(num / std::max(den, 1e-30)));
  }
  return worst;
}

// slot_mapping [t] of `dtype` (i32 or i64) for a cache of `slots` slots: distinct random slots,
// every fifth token -1 (padding, which the writes skip). t <= slots.
inline Tensor random_slot_mapping(int64_t t, int64_t slots, DType dtype, std::mt19937_64& rng) {
  std::vector<int64_t> free_slots(static_cast<size_t>(slots));
  std::iota(free_slots.begin(), free_slots.end(), 0);
  std::shuffle(free_slots.begin(), free_slots.end(), rng);
  Tensor mapping = Tensor::empty({t}, dtype);
  for (int64_t i = 0; i < t; ++i) {
    const int64_t s = i % 5 == 4 ? -1 : free_slots[static_cast<size_t>(i)];
    if (dtype == DType::kI32) {
      mapping.data<int32_t>()[i] = static_cast<int32_t>(s);
    } else {
      mapping.data<int64_t>()[i] = s;
    }
  }
  return mapping;
}

}  // namespace mlaserve::ops::testing
