#include "ops/cpu_util.h"

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>

namespace mlaserve::ops::cpu {

const float* f32_span(const Tensor& t, int64_t offset, int64_t n, std::vector<float>& scratch) {
  if (t.dtype() == DType::kF32) return t.data<float>() + offset;
  const bfloat16* p = t.data<bfloat16>() + offset;
  scratch.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) scratch[i] = bf16_to_float(p[i]);
  return scratch.data();
}

float dot(const float* a, const float* b, int64_t n) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j];
  }
  for (int j = 0; i < n; ++i, ++j) acc[j] += a[i] * b[i];
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int j = 0; j < width; ++j) acc[j] += acc[j + width];
  }
  return acc[0];
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void parallel_for(int64_t n, int64_t work_per_item, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t by_work = std::max<int64_t>(1, n * std::max<int64_t>(1, work_per_item) / kMinWorkPerThread);
  const int64_t threads = std::min({cores, by_work, n});
  if (threads == 1) {
    body(0, n);
    return;
  }
  const int64_t chunk = (n + threads - 1) / threads;
  std::exception_ptr first_error;
  std::mutex error_mutex;
  const auto run = [&](int64_t begin, int64_t end) {
    try {
      body(begin, end);
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!first_error) first_error = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(threads - 1));
  for (int64_t begin = chunk; begin < n; begin += chunk) workers.emplace_back(run, begin, std::min(n, begin + chunk));
  run(0, std::min(n, chunk));
  for (std::thread& w : workers) w.join();
  if (first_error) std::rethrow_exception(first_error);
}

int64_t index_at(const Tensor& t, int64_t i) {
  return t.dtype() == DType::kI32 ? t.data<int32_t>()[i] : t.data<int64_t>()[i];
}

void check_host(std::string_view op, std::string_view name, const Tensor& t) {
  MLA_CHECK(t.defined() && t.is_cpu(), "{}: {} must be a defined host tensor", op, name);
}

void check_f32(std::string_view op, std::string_view name, const Tensor& t) {
  check_host(op, name, t);
  MLA_CHECK(t.dtype() == DType::kF32, "{}: {} {} must be F32, got {}", op, name,
            shape_str(t.shape()), dtype_name(t.dtype()));
}

void check_f32_or_bf16(std::string_view op, std::string_view name, const Tensor& t) {
  check_host(op, name, t);
  MLA_CHECK(t.dtype() == DType::kF32 || t.dtype() == DType::kBF16,
            "{}: {} {} must be F32 or BF16, got {}", op, name, shape_str(t.shape()),
            dtype_name(t.dtype()));
}

void check_index(std::string_view op, std::string_view name, const Tensor& t) {
  check_host(op, name, t);
  MLA_CHECK(t.dtype() == DType::kI32 || t.dtype() == DType::kI64,
            "{}: {} {} must be I32 or I64, got {}", op, name, shape_str(t.shape()),
            dtype_name(t.dtype()));
}

void check_shape(std::string_view op, std::string_view name, const Tensor& t, const Shape& want) {
  MLA_CHECK(t.shape() == want, "{}: {} has shape {}, expected {}", op, name, shape_str(t.shape()),
            shape_str(want));
}

}  // namespace mlaserve::ops::cpu
