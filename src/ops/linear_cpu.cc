#include <algorithm>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/linear.h"

namespace mlaserve::ops {

void linear_cpu(const Tensor& x, const Tensor& weight, Tensor& out) {
  constexpr std::string_view kOp = "linear_cpu";
  cpu::check_f32(kOp, "x", x);
  cpu::check_f32_or_bf16(kOp, "weight", weight);
  cpu::check_f32(kOp, "out", out);
  MLA_CHECK(x.ndim() == 2 && weight.ndim() == 2 && x.dim(1) == weight.dim(1),
            "{}: x {} must be [T, K] and weight {} [N, K]", kOp, shape_str(x.shape()),
            shape_str(weight.shape()));
  const int64_t t = x.dim(0), k = x.dim(1), n = weight.dim(0);
  cpu::check_shape(kOp, "out", out, {t, n});
  constexpr int64_t kRowsPerTile = 16;
  const float* xp = x.data<float>();
  float* o = out.data<float>();
  const int64_t tiles = (n + kRowsPerTile - 1) / kRowsPerTile;
  cpu::parallel_for(tiles, kRowsPerTile * t * k, [&](int64_t tile0, int64_t tile1) {
    std::vector<float> scratch;
    for (int64_t n0 = tile0 * kRowsPerTile; n0 < std::min(n, tile1 * kRowsPerTile); n0 += kRowsPerTile) {
      const int64_t rows = std::min(kRowsPerTile, n - n0);
      const float* w = cpu::f32_span(weight, n0 * k, rows * k, scratch);  // [rows, K] as f32
      for (int64_t i = 0; i < t; ++i) {
        for (int64_t r = 0; r < rows; ++r) o[i * n + n0 + r] = cpu::dot(xp + i * k, w + r * k, k);
      }
    }
  });
}

}  // namespace mlaserve::ops
