// gpu::copy_rows_async against the same copy on the host: random bytes, a destination filled with
// a marker byte first, so that every byte of every row must arrive and every byte between rows
// must keep the marker. Shapes: the W_UK absorption's q_pe copy (T·n rows of 128 bytes between
// pitches of 384 and 1152 bytes: 16-byte units), and offsets, widths and pitches that force each
// narrower unit (8, 4, 2, 1 bytes).
#include "ops/cuda/copy_rows.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/cuda_check.h"
#include "cuda_op_test_util.h"

namespace mlaserve::ops {
namespace {

using testing::CudaOpTest;

class CopyRowsCuda : public CudaOpTest {
 protected:
  // Copies `rows` rows of `width` bytes from src + src_offset (pitch src_pitch) to
  // dst + dst_offset (pitch dst_pitch) on the GPU and on the host, and compares whole buffers.
  void check(size_t rows, size_t width, size_t src_pitch, size_t dst_pitch, size_t src_offset, size_t dst_offset,
             uint64_t seed) {
    std::mt19937_64 rng(seed);
    const size_t src_bytes = src_offset + rows * src_pitch, dst_bytes = dst_offset + rows * dst_pitch;
    std::vector<uint8_t> src(src_bytes), want(dst_bytes, 0xA5);
    for (uint8_t& b : src) b = static_cast<uint8_t>(rng());
    for (size_t r = 0; r < rows; ++r) {
      for (size_t i = 0; i < width; ++i) want[dst_offset + r * dst_pitch + i] = src[src_offset + r * src_pitch + i];
    }

    Tensor src_gpu = Tensor::empty({static_cast<int64_t>(src_bytes)}, DType::kU8, Device::kCUDA);
    Tensor dst_gpu = Tensor::empty({static_cast<int64_t>(dst_bytes)}, DType::kU8, Device::kCUDA);
    MLA_CUDA_CHECK(cudaMemcpy(src_gpu.raw(), src.data(), src_bytes, cudaMemcpyHostToDevice));
    MLA_CUDA_CHECK(cudaMemset(dst_gpu.raw(), 0xA5, dst_bytes));
    gpu::copy_rows_async(static_cast<uint8_t*>(dst_gpu.raw()) + dst_offset, dst_pitch,
                         static_cast<const uint8_t*>(src_gpu.raw()) + src_offset, src_pitch, width, rows,
                         cuda_stream());
    MLA_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
    std::vector<uint8_t> got(dst_bytes);
    MLA_CUDA_CHECK(cudaMemcpy(got.data(), dst_gpu.raw(), dst_bytes, cudaMemcpyDeviceToHost));
    size_t wrong = 0;
    for (size_t i = 0; i < dst_bytes; ++i) wrong += got[i] != want[i];
    EXPECT_EQ(wrong, 0u) << rows << " rows of " << width << " bytes, pitches " << src_pitch << " -> " << dst_pitch;
  }
};

TEST_F(CopyRowsCuda, SmallQPeOfTheAbsorption) {
  check(256 * 16, 128, 192 * 2, 576 * 2, 128 * 2, 512 * 2, 1);  // V2-Lite, 256 tokens x 16 heads
  check(7 * 128, 128, 192 * 2, 576 * 2, 128 * 2, 512 * 2, 2);   // V3's 128 heads
}

TEST_F(CopyRowsCuda, SmallEveryUnit) {
  check(33, 48, 64, 80, 8, 24, 3);   // 8-byte units
  check(33, 20, 36, 28, 4, 12, 4);   // 4-byte
  check(33, 14, 18, 30, 2, 6, 5);    // 2-byte
  check(33, 13, 17, 29, 1, 3, 6);    // 1-byte
  check(1, 4096, 4096, 4096, 0, 0, 7);  // one row, pitch = width
  check(0, 16, 16, 16, 0, 0, 8);      // nothing to copy
}

TEST_F(CopyRowsCuda, SmallRejectsWidthBeyondPitch) {
  Tensor buf = Tensor::empty({1024}, DType::kU8, Device::kCUDA);
  EXPECT_THROW(gpu::copy_rows_async(buf.raw(), 16, buf.raw(), 64, 32, 2, cuda_stream()), Error);
}

}  // namespace
}  // namespace mlaserve::ops
