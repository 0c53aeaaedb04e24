#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/mha_attention.h"

namespace mlaserve::ops {

void mha_attention_cpu(const Tensor& q, const Tensor& k, const Tensor& v, const MhaParams& params,
                       AttentionState& out, const AttentionFp8Output& out_q) {
  constexpr std::string_view kOp = "mha_attention_cpu";
  cpu::check_f32(kOp, "q", q);
  cpu::check_f32(kOp, "k", k);
  cpu::check_f32(kOp, "v", v);
  cpu::check_f32(kOp, "out.out", out.out);
  cpu::check_f32(kOp, "out.lse", out.lse);
  MLA_CHECK(q.ndim() == 3 && k.ndim() == 3 && v.ndim() == 3,
            "{}: q {}, k {}, v {} must be [T, n, head_dim]", kOp, shape_str(q.shape()),
            shape_str(k.shape()), shape_str(v.shape()));
  const int64_t tq = q.dim(0), n = q.dim(1), dqk = q.dim(2), tk = k.dim(0), dv = v.dim(2);
  cpu::check_shape(kOp, "k", k, {tk, n, dqk});
  cpu::check_shape(kOp, "v", v, {tk, n, dv});
  cpu::check_shape(kOp, "out.out", out.out, {tq, n, dv});
  cpu::check_shape(kOp, "out.lse", out.lse, {tq, n});
  MLA_CHECK(std::isfinite(params.softmax_scale) && params.softmax_scale > 0.0f,
            "{}: softmax_scale must be positive and finite, got {}", kOp, params.softmax_scale);
  MLA_CHECK(!params.causal || tk >= tq, "{}: causal attention needs Tk >= Tq, got q {} and k {}", kOp,
            shape_str(q.shape()), shape_str(k.shape()));
  if (out_q.defined()) check_attention_fp8_output(kOp, out_q, out.out);

  const float *qp = q.data<float>(), *kp = k.data<float>(), *vp = v.data<float>();
  float* o = out.out.data<float>();
  float* lse = out.lse.data<float>();
  // Query rows are independent: split over threads (cpu::parallel_for), by their largest work.
  cpu::parallel_for(tq, tk * n * (dqk + dv), [&](int64_t i0, int64_t i1) {
    std::vector<float> scores(static_cast<size_t>(tk));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t visible = params.causal ? tk - tq + i + 1 : tk;
      for (int64_t h = 0; h < n; ++h) {
        const float* qr = qp + (i * n + h) * dqk;
        float* orow = o + (i * n + h) * dv;
        std::fill(orow, orow + dv, 0.0f);
        float max_score = -std::numeric_limits<float>::infinity();
        for (int64_t s = 0; s < visible; ++s) {
          scores[s] = params.softmax_scale * cpu::dot(qr, kp + (s * n + h) * dqk, dqk);
          max_score = std::max(max_score, scores[s]);
        }
        if (visible == 0) {
          lse[i * n + h] = max_score;  // -inf: no keys
          continue;
        }
        float sum = 0.0f;
        for (int64_t s = 0; s < visible; ++s) {
          const float p = std::exp(scores[s] - max_score);
          sum += p;
          cpu::axpy(p, vp + (s * n + h) * dv, orow, dv);
        }
        for (int64_t c = 0; c < dv; ++c) orow[c] /= sum;
        lse[i * n + h] = max_score + std::log(sum);
      }
    }
  });
  if (out_q.defined()) quantize_attention_output(out.out, out_q);
}

}  // namespace mlaserve::ops
