#include "ops/random_fill.h"

namespace mlaserve::ops {

void fill_uniform_cpu(const UniformFill& fill, Tensor& out) {
  const auto n = static_cast<uint64_t>(out.numel());
  if (out.dtype() == DType::kF32) {
    float* p = out.data<float>();
    for (uint64_t i = 0; i < n; ++i) p[i] = uniform_fill_value(fill, i);
    return;
  }
  MLA_CHECK(out.dtype() == DType::kBF16, "fill_uniform: out must be F32 or BF16, got {}", dtype_name(out.dtype()));
  bfloat16* p = out.data<bfloat16>();
  for (uint64_t i = 0; i < n; ++i) p[i] = float_to_bf16(uniform_fill_value(fill, i));
}

}  // namespace mlaserve::ops
