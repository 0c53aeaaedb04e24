// The device caching allocator (core/memory.cc) on a real GPU: a request no GPU can hold fails with
// an error that says how much was asked and how much is free, and the allocator still serves
// requests after it.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "core/memory.h"
#include "core/tensor.h"

namespace mlaserve {
namespace {

TEST(DeviceCacheCuda, AnAllocationPastTheGpuSaysHowMuchWasAskedAndFree) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU visible";
  try {
    (void)Tensor::empty({int64_t{1} << 40}, DType::kU8, Device::kCUDA);  // 1 TiB
    FAIL() << "a 1 TiB allocation succeeded";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("out of GPU memory: 1024.00 GiB asked"), std::string::npos) << what;
    EXPECT_NE(what.find("GiB free"), std::string::npos) << what;
  }
  Tensor t = Tensor::empty({1 << 20}, DType::kU8, Device::kCUDA);  // still serving
  EXPECT_EQ(t.nbytes(), 1 << 20);
}

}  // namespace
}  // namespace mlaserve
