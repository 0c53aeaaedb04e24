#include "core/tensor.h"

#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#ifdef MLASERVE_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace mlaserve {

std::string shape_str(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    MLA_CHECK(d >= 0, "negative dimension in shape {}", shape_str(shape));
    n *= d;
  }
  return n;
}

Tensor Tensor::empty(Shape shape, DType dtype, Device device) {
  size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  auto buffer = std::make_shared<Buffer>(device, bytes);
  void* data = buffer->data();
  return Tensor(std::move(shape), dtype, device, data, std::move(buffer));
}

Tensor Tensor::zeros(Shape shape, DType dtype, Device device) {
  Tensor t = empty(std::move(shape), dtype, device);
  t.fill_bytes(0);
  return t;
}

Tensor Tensor::view_of(void* data, Shape shape, DType dtype, Device device,
                       std::shared_ptr<const void> keep_alive) {
  return Tensor(std::move(shape), dtype, device, data, std::move(keep_alive));
}

Tensor Tensor::from_floats(const std::vector<float>& values, Shape shape, DType dtype) {
  MLA_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "{} values for shape {}",
            values.size(), shape_str(shape));
  Tensor f = empty(shape, DType::kF32);
  if (!values.empty()) std::memcpy(f.raw(), values.data(), values.size() * sizeof(float));
  return dtype == DType::kF32 ? f : f.to_dtype(dtype);
}

int64_t Tensor::dim(int i) const {
  int n = ndim();
  int j = i < 0 ? i + n : i;
  MLA_CHECK(j >= 0 && j < n, "dimension {} out of range for shape {}", i, shape_str(shape_));
  return shape_[j];
}

Tensor Tensor::reshape(Shape shape) const {
  // One -1 is inferred.
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      MLA_CHECK(infer < 0, "more than one -1 in reshape to {}", shape_str(shape));
      infer = static_cast<int>(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    MLA_CHECK(known > 0 && numel() % known == 0, "cannot reshape {} to {}", shape_str(shape_),
              shape_str(shape));
    shape[infer] = numel() / known;
  }
  MLA_CHECK(shape_numel(shape) == numel(), "cannot reshape {} to {}", shape_str(shape_),
            shape_str(shape));
  return Tensor(std::move(shape), dtype_, device_, data_, owner_);
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  MLA_CHECK(ndim() >= 1, "slice of a scalar");
  MLA_CHECK(0 <= begin && begin <= end && end <= shape_[0], "slice [{}, {}) of shape {}", begin, end,
            shape_str(shape_));
  Shape s = shape_;
  s[0] = end - begin;
  size_t row_bytes = shape_[0] == 0 ? 0 : nbytes() / static_cast<size_t>(shape_[0]);
  return Tensor(std::move(s), dtype_, device_, static_cast<char*>(data_) + begin * row_bytes, owner_);
}

Tensor Tensor::to(Device device) const {
  Tensor out = empty(shape_, dtype_, device);
  copy_bytes(out.raw(), device, data_, device_, nbytes());
  return out;
}

Tensor Tensor::clone() const { return to(device_); }

Tensor Tensor::to_f32() const {
  Tensor host = is_cpu() ? *this : to(Device::kCPU);
  Tensor out = empty(shape_, DType::kF32);
  float* o = out.data<float>();
  int64_t n = numel();
  switch (dtype_) {
    case DType::kF32: std::memcpy(o, host.raw(), nbytes()); break;
    case DType::kBF16: {
      const auto* p = host.data<bfloat16>();
      for (int64_t i = 0; i < n; ++i) o[i] = bf16_to_float(p[i]);
      break;
    }
    case DType::kF16: {
      const auto* p = host.data<float16>();
      for (int64_t i = 0; i < n; ++i) o[i] = f16_to_float(p[i]);
      break;
    }
    case DType::kF8E4M3: {
      const auto* p = host.data<float8_e4m3>();
      for (int64_t i = 0; i < n; ++i) o[i] = e4m3_to_float(p[i]);
      break;
    }
    case DType::kI32: {
      const auto* p = host.data<int32_t>();
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<float>(p[i]);
      break;
    }
    case DType::kI64: {
      const auto* p = host.data<int64_t>();
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<float>(p[i]);
      break;
    }
    default: MLA_FAIL("to_f32: unsupported dtype {}", dtype_name(dtype_));
  }
  return out;
}

Tensor Tensor::to_dtype(DType dtype) const {
  Tensor f = to_f32();
  if (dtype == DType::kF32) return f;
  Tensor out = empty(shape_, dtype);
  const float* p = f.data<float>();
  int64_t n = numel();
  switch (dtype) {
    case DType::kBF16: {
      auto* o = out.data<bfloat16>();
      for (int64_t i = 0; i < n; ++i) o[i] = float_to_bf16(p[i]);
      break;
    }
    case DType::kF16: {
      auto* o = out.data<float16>();
      for (int64_t i = 0; i < n; ++i) o[i] = float_to_f16(p[i]);
      break;
    }
    case DType::kF8E4M3: {
      auto* o = out.data<float8_e4m3>();
      for (int64_t i = 0; i < n; ++i) o[i] = float_to_e4m3(p[i]);
      break;
    }
    default: MLA_FAIL("to_dtype: unsupported target dtype {}", dtype_name(dtype));
  }
  return out;
}

std::vector<float> Tensor::to_vector() const {
  Tensor f = to_f32();
  const float* p = f.data<float>();
  return std::vector<float>(p, p + numel());
}

void Tensor::fill_bytes(uint8_t byte, Stream stream) {
  if (nbytes() == 0) return;
  if (is_cpu()) {
    std::memset(data_, byte, nbytes());
    return;
  }
#ifdef MLASERVE_WITH_CUDA
  MLA_CUDA_CHECK(cudaMemsetAsync(data_, byte, nbytes(), static_cast<cudaStream_t>(stream.cuda)));
#else
  MLA_FAIL("fill_bytes on a GPU tensor needs the CUDA backend");
#endif
}

}  // namespace mlaserve
