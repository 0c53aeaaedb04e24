// Helpers shared by the CPU reference ops. Not an op contract: nothing outside src/ops (and
// its tests) includes this file.
//
// Float reads: activations and weights reach the CPU ops as f32 or bf16 tensors; f32_span()
// hands out a row as f32 without copying when the storage already is f32.
// Dot products: dot() keeps 16 independent fp32 partial sums (a fixed order, so results are
// reproducible, and one the compiler can vectorise without reassociating), then adds them
// pairwise.
// Threads: parallel_for() splits the independent items of a large op (the weight rows of a
// linear) over the host's cores. Each item is computed by the same code as on one thread, so the
// results are the same bits whatever the thread count. Why: the CPU references of the GPU tests
// run at DeepSeek's real shapes (a V3 projection at thousands of tokens, every expert of a layer),
// and on one core they took most of each GPU test run; the CPU backend's large products gain as
// well. Small calls (the tiny models' every op) stay on the calling thread: below
// kMinWorkPerThread multiply-adds a thread would cost more than it saves.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace mlaserve::ops::cpu {

// n values of `t` (f32 or bf16, on the host) starting at flat element `offset`, as f32: a
// pointer into t's storage when t is f32, else into `scratch` after conversion.
const float* f32_span(const Tensor& t, int64_t offset, int64_t n, std::vector<float>& scratch);

// Σ a[i]·b[i] in fp32 with 16 partial sums.
float dot(const float* a, const float* b, int64_t n);

// y[i] += alpha · x[i]
void axpy(float alpha, const float* x, float* y, int64_t n);

// Runs body(begin, end) over contiguous ranges that cover [0, n) once, on up to the host's
// hardware threads, as many as leave each at least kMinWorkPerThread multiply-adds
// (work_per_item each); on the calling thread alone when that is one. Returns when all ranges are
// done; an exception thrown by a range is rethrown here (the first one, after all ranges ended).
inline constexpr int64_t kMinWorkPerThread = int64_t{1} << 22;
void parallel_for(int64_t n, int64_t work_per_item, const std::function<void(int64_t, int64_t)>& body);

// Element i of an i32 or i64 tensor.
int64_t index_at(const Tensor& t, int64_t i);

// Precondition checks that name the op in their message.
void check_host(std::string_view op, std::string_view name, const Tensor& t);
void check_f32(std::string_view op, std::string_view name, const Tensor& t);
void check_f32_or_bf16(std::string_view op, std::string_view name, const Tensor& t);
void check_index(std::string_view op, std::string_view name, const Tensor& t);  // i32 or i64
void check_shape(std::string_view op, std::string_view name, const Tensor& t, const Shape& want);

}  // namespace mlaserve::ops::cpu
