// CPU reference of paged_mha_decode (see paged_mha_decode.h): per (query row, head) a plain
// two-pass softmax in fp32 over the visible cached keys, read through the block table.
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/paged_cache_cpu.h"
#include "ops/paged_mha_decode.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "paged_mha_decode_cpu";

void check_args(const PagedMhaDecodeArgs& a, const AttentionState& o) {
  cpu::check_f32_or_bf16(kOp, "q", a.q);
  cpu::check_f32_or_bf16(kOp, "cache", a.cache);
  cpu::check_f32(kOp, "out", o.out);
  cpu::check_f32(kOp, "lse", o.lse);
  MLA_CHECK(a.q.ndim() == 3 && a.cache.ndim() == 3 && a.cache.dim(1) > 0,
            "{}: q {} must be [T, n, dqk] and cache {} [num_blocks, block_size, n * (dqk + dv)]", kOp,
            shape_str(a.q.shape()), shape_str(a.cache.shape()));
  const int64_t t = a.q.dim(0), n = a.q.dim(1), dqk = a.q.dim(2);
  MLA_CHECK(a.cache.dim(2) % n == 0 && a.cache.dim(2) / n > dqk, "{}: cache rows {} do not hold K and V of {} heads of {}",
            kOp, shape_str(a.cache.shape()), n, dqk);
  const int64_t dv = a.cache.dim(2) / n - dqk;
  cpu::check_shape(kOp, "out", o.out, {t, n, dv});
  cpu::check_shape(kOp, "lse", o.lse, {t, n});
  MLA_CHECK(std::isfinite(a.softmax_scale) && a.softmax_scale > 0.0f,
            "{}: softmax_scale must be positive and finite, got {}", kOp, a.softmax_scale);
  cpu::check_decode_batch(kOp, a.block_table, a.seq_lens, a.query_start, t, a.cache.dim(1), a.cache.dim(0));
}

}  // namespace

void paged_mha_decode_cpu(const PagedMhaDecodeArgs& args, AttentionState& out) {
  check_args(args, out);
  const int64_t n = args.q.dim(1), dqk = args.q.dim(2), row = args.cache.dim(2), dv = row / n - dqk;
  const int64_t block_size = args.cache.dim(1), max_blocks = args.block_table.dim(1);
  const int32_t* qs = args.query_start.data<int32_t>();
  const int32_t* lens = args.seq_lens.data<int32_t>();
  const int32_t* table = args.block_table.data<int32_t>();
  std::vector<float> q_scratch, row_scratch, scores, acc(static_cast<size_t>(dv));
  for (int64_t b = 0; b < args.block_table.dim(0); ++b) {
    const int64_t q_len = qs[b + 1] - qs[b], seq_len = lens[b];
    for (int64_t i = 0; i < q_len; ++i) {
      const int64_t r = qs[b] + i, visible = seq_len - q_len + i + 1;
      for (int64_t h = 0; h < n; ++h) {
        const float* q = cpu::f32_span(args.q, (r * n + h) * dqk, dqk, q_scratch);
        scores.assign(static_cast<size_t>(visible), 0.0f);
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t s = 0; s < visible; ++s) {
          const int64_t slot = table[b * max_blocks + s / block_size] * block_size + s % block_size;
          const float* k = cpu::f32_span(args.cache, slot * row + h * dqk, dqk, row_scratch);
          float dot = 0.0f;
          for (int64_t c = 0; c < dqk; ++c) dot += q[c] * k[c];
          scores[s] = dot * args.softmax_scale;
          m = std::max(m, scores[s]);
        }
        double sum = 0.0;
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t s = 0; s < visible; ++s) {
          const float p = std::exp(scores[s] - m);
          sum += p;
          const int64_t slot = table[b * max_blocks + s / block_size] * block_size + s % block_size;
          const float* v = cpu::f32_span(args.cache, slot * row + n * dqk + h * dv, dv, row_scratch);
          for (int64_t c = 0; c < dv; ++c) acc[c] += p * v[c];
        }
        float* o = out.out.data<float>() + (r * n + h) * dv;
        for (int64_t c = 0; c < dv; ++c) o[c] = static_cast<float>(acc[c] / sum);
        out.lse.data<float>()[r * n + h] = m + static_cast<float>(std::log(sum));
      }
    }
  }
}

}  // namespace mlaserve::ops
