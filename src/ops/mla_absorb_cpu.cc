#include <algorithm>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/mla_absorb.h"

namespace mlaserve::ops {

void mla_absorb_query_cpu(const Tensor& q, const Tensor& w_kv_b, Tensor& q_abs) {
  constexpr std::string_view kOp = "mla_absorb_query_cpu";
  cpu::check_f32(kOp, "q", q);
  cpu::check_f32_or_bf16(kOp, "w_kv_b", w_kv_b);
  cpu::check_f32(kOp, "q_abs", q_abs);
  MLA_CHECK(q.ndim() == 3 && w_kv_b.ndim() == 2 && q_abs.ndim() == 3,
            "{}: q {} must be [T, n, dn + dr], w_kv_b {} [n·(dn + dv), dc], q_abs {} [T, n, dc + dr]", kOp,
            shape_str(q.shape()), shape_str(w_kv_b.shape()), shape_str(q_abs.shape()));
  const int64_t t = q.dim(0), n = q.dim(1), dc = w_kv_b.dim(1), dr = q_abs.dim(2) - dc;
  const int64_t dn = q.dim(2) - dr, rows_per_head = n > 0 ? w_kv_b.dim(0) / n : 0;
  MLA_CHECK(dr > 0 && dn > 0 && n > 0 && w_kv_b.dim(0) % n == 0 && rows_per_head > dn,
            "{}: inconsistent shapes q {}, w_kv_b {}, q_abs {} (dc = {}, dr = {}, dn = {})", kOp,
            shape_str(q.shape()), shape_str(w_kv_b.shape()), shape_str(q_abs.shape()), dc, dr, dn);
  cpu::check_shape(kOp, "q_abs", q_abs, {t, n, dc + dr});
  const float* qp = q.data<float>();
  float* out = q_abs.data<float>();
  std::vector<float> scratch;
  for (int64_t h = 0; h < n; ++h) {
    const float* w_uk = cpu::f32_span(w_kv_b, h * rows_per_head * dc, dn * dc, scratch);  // [dn, dc]
    for (int64_t i = 0; i < t; ++i) {
      const float* q_nope = qp + (i * n + h) * (dn + dr);
      float* dst = out + (i * n + h) * (dc + dr);
      std::fill(dst, dst + dc, 0.0f);
      for (int64_t d = 0; d < dn; ++d) cpu::axpy(q_nope[d], w_uk + d * dc, dst, dc);
      std::copy(q_nope + dn, q_nope + dn + dr, dst + dc);
    }
  }
}

void mla_up_project_output_cpu(const Tensor& o_lat, const Tensor& w_kv_b, Tensor& o) {
  constexpr std::string_view kOp = "mla_up_project_output_cpu";
  cpu::check_f32(kOp, "o_lat", o_lat);
  cpu::check_f32_or_bf16(kOp, "w_kv_b", w_kv_b);
  cpu::check_f32(kOp, "o", o);
  MLA_CHECK(o_lat.ndim() == 3 && w_kv_b.ndim() == 2 && o.ndim() == 3,
            "{}: o_lat {} must be [T, n, dc], w_kv_b {} [n·(dn + dv), dc], o {} [T, n, dv]", kOp,
            shape_str(o_lat.shape()), shape_str(w_kv_b.shape()), shape_str(o.shape()));
  const int64_t t = o_lat.dim(0), n = o_lat.dim(1), dc = o_lat.dim(2), dv = o.dim(2);
  const int64_t rows_per_head = n > 0 ? w_kv_b.dim(0) / n : 0, dn = rows_per_head - dv;
  MLA_CHECK(n > 0 && w_kv_b.dim(1) == dc && w_kv_b.dim(0) % n == 0 && dn > 0,
            "{}: inconsistent shapes o_lat {}, w_kv_b {}, o {}", kOp, shape_str(o_lat.shape()),
            shape_str(w_kv_b.shape()), shape_str(o.shape()));
  cpu::check_shape(kOp, "o", o, {t, n, dv});
  const float* lat = o_lat.data<float>();
  float* out = o.data<float>();
  std::vector<float> scratch;
  for (int64_t h = 0; h < n; ++h) {
    const float* w_uv = cpu::f32_span(w_kv_b, (h * rows_per_head + dn) * dc, dv * dc, scratch);  // [dv, dc]
    for (int64_t i = 0; i < t; ++i) {
      const float* src = lat + (i * n + h) * dc;
      for (int64_t j = 0; j < dv; ++j) out[(i * n + h) * dv + j] = cpu::dot(w_uv + j * dc, src, dc);
    }
  }
}

}  // namespace mlaserve::ops
