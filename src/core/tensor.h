// Tensor: a dtype, a row-major contiguous shape, a device, and a pointer into a shared Buffer
// (owning) or into memory that something else keeps alive (a view, e.g. an mmap'd checkpoint).
//
// Tensors are cheap handles: copying one shares the storage. Views (reshape, slice of the
// leading dimension) share it too. There are no strides: every tensor is contiguous, which is
// what every kernel in this engine wants.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/stream.h"

namespace mlaserve {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& shape);  // "[576, 7168]"
int64_t shape_numel(const Shape& shape);

template <typename T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::kF32; }
template <> constexpr DType dtype_of<float16>() { return DType::kF16; }
template <> constexpr DType dtype_of<bfloat16>() { return DType::kBF16; }
template <> constexpr DType dtype_of<float8_e4m3>() { return DType::kF8E4M3; }
template <> constexpr DType dtype_of<int64_t>() { return DType::kI64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::kI32; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::kU8; }
template <> constexpr DType dtype_of<bool>() { return DType::kBool; }

class Tensor {
 public:
  Tensor() = default;

  // New uninitialised (empty) or zero-filled storage.
  static Tensor empty(Shape shape, DType dtype, Device device = Device::kCPU);
  static Tensor zeros(Shape shape, DType dtype, Device device = Device::kCPU);
  // A view of memory owned elsewhere; keep_alive (may be null) holds the owner.
  static Tensor view_of(void* data, Shape shape, DType dtype, Device device,
                        std::shared_ptr<const void> keep_alive);
  // Host tensor from values (converted to dtype with the rounding of dtype.h).
  static Tensor from_floats(const std::vector<float>& values, Shape shape, DType dtype);

  bool defined() const { return data_ != nullptr || owner_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_cpu() const { return device_ == Device::kCPU; }

  void* raw() const { return data_; }
  template <typename T>
  T* data() const {
    MLA_CHECK(dtype_of<T>() == dtype_, "tensor {} is {}, accessed as {}", shape_str(shape_),
              dtype_name(dtype_), dtype_name(dtype_of<T>()));
    return static_cast<T*>(data_);
  }

  // Views sharing storage.
  Tensor reshape(Shape shape) const;
  Tensor slice(int64_t begin, int64_t end) const;  // rows [begin, end) of dimension 0

  // Copies (new storage).
  Tensor to(Device device) const;
  Tensor clone() const;
  // Host copy converted to f32 (from f32, bf16, f16, f8e4m3, i32, i64).
  Tensor to_f32() const;
  // Host copy converted from f32 to bf16/f16/f8e4m3 (rounding as in dtype.h) or f32.
  Tensor to_dtype(DType dtype) const;

  // Host f32 tensor values as a vector (any float dtype, converted).
  std::vector<float> to_vector() const;

  // Fills every byte with `byte` (poisoning outputs before a kernel runs); on the GPU queued on
  // `stream` (ordered with the ops on it), on the host at once.
  void fill_bytes(uint8_t byte, Stream stream = {});

 private:
  Tensor(Shape shape, DType dtype, Device device, void* data, std::shared_ptr<const void> owner)
      : shape_(std::move(shape)), dtype_(dtype), device_(device), data_(data), owner_(std::move(owner)) {}

  Shape shape_;
  DType dtype_ = DType::kF32;
  Device device_ = Device::kCPU;
  void* data_ = nullptr;
  std::shared_ptr<const void> owner_;
};

}  // namespace mlaserve
