#include "ops/embedding.h"

#include <algorithm>
#include <vector>

#include "ops/cpu_util.h"

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

}  // namespace mlaserve::ops
