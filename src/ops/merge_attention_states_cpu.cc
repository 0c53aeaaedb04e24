#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/cpu_util.h"
#include "ops/merge_attention_states.h"

namespace mlaserve::ops {

void merge_attention_states_cpu(const AttentionState& a, const AttentionState& b, AttentionState& merged,
                                const AttentionFp8Output& merged_q) {
  constexpr std::string_view kOp = "merge_attention_states_cpu";
  const AttentionState* states[] = {&a, &b, &merged};
  for (const AttentionState* s : states) {
    cpu::check_f32(kOp, "out", s->out);
    cpu::check_f32(kOp, "lse", s->lse);
  }
  MLA_CHECK(a.out.ndim() == 3, "{}: out {} must be [T, n, dv]", kOp, shape_str(a.out.shape()));
  const int64_t t = a.out.dim(0), n = a.out.dim(1), dv = a.out.dim(2);
  for (const AttentionState* s : states) {
    cpu::check_shape(kOp, "out", s->out, a.out.shape());
    cpu::check_shape(kOp, "lse", s->lse, {t, n});
  }
  if (merged_q.defined()) check_attention_fp8_output(kOp, merged_q, merged.out);
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const float *out_a = a.out.data<float>(), *out_b = b.out.data<float>();
  const float *lse_a = a.lse.data<float>(), *lse_b = b.lse.data<float>();
  float* out = merged.out.data<float>();
  float* lse = merged.lse.data<float>();
  for (int64_t r = 0; r < t * n; ++r) {
    const float la = lse_a[r], lb = lse_b[r], m = std::max(la, lb);
    float wa = 0.0f, wb = 0.0f, merged_lse = kNegInf;
    if (m != kNegInf) {
      const float ea = std::exp(la - m), eb = std::exp(lb - m), sum = ea + eb;
      wa = ea / sum;
      wb = eb / sum;
      merged_lse = m + std::log(sum);
    }
    for (int64_t c = 0; c < dv; ++c) out[r * dv + c] = wa * out_a[r * dv + c] + wb * out_b[r * dv + c];
    lse[r] = merged_lse;
  }
  if (merged_q.defined()) quantize_attention_output(merged.out, merged_q);
}

}  // namespace mlaserve::ops
