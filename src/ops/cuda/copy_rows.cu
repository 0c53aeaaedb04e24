// copy_rows_async (ops/cuda/copy_rows.h): one thread per unit of a row, grid-stride over
// (row, unit) with 64-bit indices; pitches in units.
#include "ops/cuda/copy_rows.h"

#include <cstdint>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"

namespace mlaserve::ops::gpu {
namespace {

constexpr int kThreads = 256;

template <typename Unit>
__global__ void __launch_bounds__(kThreads)
    copy_rows_kernel(Unit* dst, int64_t dst_pitch, const Unit* src, int64_t src_pitch, int64_t row_units,
                     int64_t total) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t row = i / row_units, u = i - row * row_units;
    dst[row * dst_pitch + u] = src[row * src_pitch + u];
  }
}

template <typename Unit>
void launch(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows,
            cudaStream_t stream) {
  constexpr size_t kUnit = sizeof(Unit);
  const auto row_units = static_cast<int64_t>(width / kUnit);
  const int64_t total = row_units * static_cast<int64_t>(rows);
  copy_rows_kernel<Unit><<<grid_blocks(total, kThreads), kThreads, 0, stream>>>(
      static_cast<Unit*>(dst), static_cast<int64_t>(dst_pitch / kUnit), static_cast<const Unit*>(src),
      static_cast<int64_t>(src_pitch / kUnit), row_units, total);
  MLA_CUDA_CHECK_LAUNCH();
}

}  // namespace

void copy_rows_async(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows,
                     cudaStream_t stream) {
  MLA_CHECK(width <= dst_pitch && width <= src_pitch, "copy_rows_async: rows of {} bytes in pitches of {} and {}",
            width, dst_pitch, src_pitch);
  if (width == 0 || rows == 0) return;
  const size_t all = width | dst_pitch | src_pitch | reinterpret_cast<uintptr_t>(dst) |
                     reinterpret_cast<uintptr_t>(src);  // a unit divides each iff it divides this
  if (all % 16 == 0) return launch<uint4>(dst, dst_pitch, src, src_pitch, width, rows, stream);
  if (all % 8 == 0) return launch<uint2>(dst, dst_pitch, src, src_pitch, width, rows, stream);
  if (all % 4 == 0) return launch<uint32_t>(dst, dst_pitch, src, src_pitch, width, rows, stream);
  if (all % 2 == 0) return launch<uint16_t>(dst, dst_pitch, src, src_pitch, width, rows, stream);
  launch<uint8_t>(dst, dst_pitch, src, src_pitch, width, rows, stream);
}

}  // namespace mlaserve::ops::gpu
