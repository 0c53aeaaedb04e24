#include "ops/embedding.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/fp8_block.h"

namespace mlaserve::ops {

void embedding_cpu(const Tensor& ids, const Tensor& table, Tensor& out) {
  constexpr std::string_view kOp = "embedding_cpu";
  cpu::check_index(kOp, "ids", ids);
  cpu::check_f32_or_bf16(kOp, "table", table);
  cpu::check_f32(kOp, "out", out);
  MLA_CHECK(ids.ndim() == 1 && table.ndim() == 2, "{}: ids {} must be [T] and table {} [V, H]", kOp,
            shape_str(ids.shape()), shape_str(table.shape()));
  const int64_t t = ids.dim(0), v = table.dim(0), h = table.dim(1);
  cpu::check_shape(kOp, "out", out, {t, h});
  std::vector<float> scratch;
  float* o = out.data<float>();
  for (int64_t i = 0; i < t; ++i) {
    const int64_t id = cpu::index_at(ids, i);
    MLA_CHECK(id >= 0 && id < v, "{}: ids[{}] = {} outside the table's [0, {})", kOp, i, id, v);
    const float* row = cpu::f32_span(table, id * h, h, scratch);
    std::copy(row, row + h, o + i * h);
  }
}

void gather_fp8_rows_cpu(const Tensor& ids, const Tensor& x_q, const Tensor& x_scales, Tensor& out_q,
                         Tensor& out_scales) {
  constexpr std::string_view kOp = "gather_fp8_rows_cpu";
  cpu::check_index(kOp, "ids", ids);
  const auto check = [&](std::string_view name, const Tensor& t, DType dtype) {
    cpu::check_host(kOp, name, t);
    MLA_CHECK(t.dtype() == dtype, "{}: {} {} must be {}, got {}", kOp, name, shape_str(t.shape()), dtype_name(dtype),
              dtype_name(t.dtype()));
  };
  check("x_q", x_q, DType::kF8E4M3);
  check("x_scales", x_scales, DType::kF32);
  check("out_q", out_q, DType::kF8E4M3);
  check("out_scales", out_scales, DType::kF32);
  MLA_CHECK(ids.ndim() == 1 && x_q.ndim() == 2, "{}: ids {} must be [P] and x_q {} [T, K]", kOp,
            shape_str(ids.shape()), shape_str(x_q.shape()));
  const int64_t p = ids.dim(0), t = x_q.dim(0), k = x_q.dim(1), g = fp8_num_blocks(k);
  cpu::check_shape(kOp, "x_scales", x_scales, {t, g});
  cpu::check_shape(kOp, "out_q", out_q, {p, k});
  cpu::check_shape(kOp, "out_scales", out_scales, {p, g});
  const auto* codes = static_cast<const uint8_t*>(x_q.raw());
  auto* out_codes = static_cast<uint8_t*>(out_q.raw());
  for (int64_t i = 0; i < p; ++i) {
    const int64_t id = cpu::index_at(ids, i);
    MLA_CHECK(id >= 0 && id < t, "{}: ids[{}] = {} outside the rows' [0, {})", kOp, i, id, t);
    std::memcpy(out_codes + i * k, codes + id * k, static_cast<size_t>(k));
    std::copy_n(x_scales.data<float>() + id * g, g, out_scales.data<float>() + i * g);
  }
}

}  // namespace mlaserve::ops
