// Host-side argument checks and launch helpers shared by the launch code of the small CUDA ops
// (src/ops/cuda/*.cu other than the attention kernels). Every failure names the op and the
// argument, with the shape or dtype it got. Not an op contract: only src/ops/cuda includes this.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "core/tensor.h"

namespace mlaserve::ops::gpu {

// t is defined and on the GPU.
inline void check_on_gpu(std::string_view op, std::string_view name, const Tensor& t) {
  MLA_CHECK(t.defined() && t.device() == Device::kCUDA, "{}: {} must be a defined GPU tensor", op, name);
}

inline void check_dtype(std::string_view op, std::string_view name, const Tensor& t, DType dtype) {
  check_on_gpu(op, name, t);
  MLA_CHECK(t.dtype() == dtype, "{}: {} {} must be {}, got {}", op, name, shape_str(t.shape()), dtype_name(dtype),
            dtype_name(t.dtype()));
}

// Float storage of activations, tables and weights on the GPU: F32 or BF16.
inline void check_f32_or_bf16(std::string_view op, std::string_view name, const Tensor& t) {
  check_on_gpu(op, name, t);
  MLA_CHECK(t.dtype() == DType::kF32 || t.dtype() == DType::kBF16, "{}: {} {} must be F32 or BF16, got {}", op, name,
            shape_str(t.shape()), dtype_name(t.dtype()));
}

// Index tensors: I32 or I64.
inline void check_index(std::string_view op, std::string_view name, const Tensor& t) {
  check_on_gpu(op, name, t);
  MLA_CHECK(t.dtype() == DType::kI32 || t.dtype() == DType::kI64, "{}: {} {} must be I32 or I64, got {}", op, name,
            shape_str(t.shape()), dtype_name(t.dtype()));
}

inline void check_shape(std::string_view op, std::string_view name, const Tensor& t, const Shape& want) {
  MLA_CHECK(t.shape() == want, "{}: {} has shape {}, expected {}", op, name, shape_str(t.shape()), shape_str(want));
}

// An operand: defined, on the GPU, of dtype and shape, its data `align`-byte aligned (16 for
// operands read as 16-byte vectors).
inline void check_operand(std::string_view op, std::string_view name, const Tensor& t, DType dtype,
                          const Shape& shape, size_t align) {
  MLA_CHECK(t.defined() && t.device() == Device::kCUDA, "{}: {} must be on the GPU", op, name);
  MLA_CHECK(t.dtype() == dtype, "{}: {} must be {}, got {}", op, name, dtype_name(dtype), dtype_name(t.dtype()));
  MLA_CHECK(t.shape() == shape, "{}: {} must be {}, got {}", op, name, shape_str(shape), shape_str(t.shape()));
  MLA_CHECK(reinterpret_cast<uintptr_t>(t.raw()) % align == 0, "{}: {} must be {}-byte aligned", op, name, align);
}

template <typename T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw());
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
inline bool aligned16(const Tensor& t) { return aligned16(t.raw()); }

// Blocks for a grid-stride loop over `work` items at `per_block` items per block: enough to fill
// any Hopper part several times over, never more than the work needs.
inline unsigned grid_blocks(int64_t work, int64_t per_block) {
  constexpr int64_t kMaxBlocks = 132 * 32;
  return static_cast<unsigned>(std::clamp<int64_t>((work + per_block - 1) / per_block, 1, kMaxBlocks));
}

}  // namespace mlaserve::ops::gpu
