// Helpers shared by the CPU reference ops. Not an op contract: nothing outside src/ops
// includes this file.
//
// Float reads: activations and weights reach the CPU ops as f32 or bf16 tensors; f32_span()
// hands out a row as f32 without copying when the storage already is f32.
// Dot products: dot() keeps 16 independent fp32 partial sums (a fixed order, so results are
// reproducible, and one the compiler can vectorise without reassociating), then adds them
// pairwise.
#pragma once

#include <cstdint>
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

// Element i of an i32 or i64 tensor.
int64_t index_at(const Tensor& t, int64_t i);

// Precondition checks that name the op in their message.
void check_host(std::string_view op, std::string_view name, const Tensor& t);
void check_f32(std::string_view op, std::string_view name, const Tensor& t);
void check_f32_or_bf16(std::string_view op, std::string_view name, const Tensor& t);
void check_index(std::string_view op, std::string_view name, const Tensor& t);  // i32 or i64
void check_shape(std::string_view op, std::string_view name, const Tensor& t, const Shape& want);

}  // namespace mlaserve::ops::cpu
