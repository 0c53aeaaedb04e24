#include <algorithm>

#include "ops/cpu_util.h"
#include "ops/mla_expand_kv.h"

namespace mlaserve::ops {

void mla_expand_kv_cpu(const Tensor& kv, const Tensor& k_pe, Tensor& k, Tensor& v) {
  constexpr std::string_view kOp = "mla_expand_kv_cpu";
  cpu::check_f32(kOp, "kv", kv);
  cpu::check_f32(kOp, "k_pe", k_pe);
  cpu::check_f32(kOp, "k", k);
  cpu::check_f32(kOp, "v", v);
  MLA_CHECK(kv.ndim() == 3 && k_pe.ndim() == 2 && v.ndim() == 3 && kv.dim(2) > v.dim(2),
            "{}: kv {} must be [S, n, dn + dv], k_pe {} [S, dr], v {} [S, n, dv]", kOp,
            shape_str(kv.shape()), shape_str(k_pe.shape()), shape_str(v.shape()));
  const int64_t s = kv.dim(0), n = kv.dim(1), dv = v.dim(2), dn = kv.dim(2) - dv, dr = k_pe.dim(1);
  cpu::check_shape(kOp, "k_pe", k_pe, {s, dr});
  cpu::check_shape(kOp, "k", k, {s, n, dn + dr});
  cpu::check_shape(kOp, "v", v, {s, n, dv});
  const float *src = kv.data<float>(), *pe = k_pe.data<float>();
  float *kp = k.data<float>(), *vp = v.data<float>();
  for (int64_t i = 0; i < s; ++i) {
    for (int64_t h = 0; h < n; ++h) {
      const float* row = src + (i * n + h) * (dn + dv);
      float* k_row = kp + (i * n + h) * (dn + dr);
      std::copy(row, row + dn, k_row);
      std::copy(pe + i * dr, pe + (i + 1) * dr, k_row + dn);
      std::copy(row + dn, row + dn + dv, vp + (i * n + h) * dv);
    }
  }
}

}  // namespace mlaserve::ops
