// CPU reference of mla_decode (see mla_decode.h). Per sequence, the cached rows it can see are
// gathered once into f32 (following the block table), then every (query token, head) pair runs
// a plain two-pass softmax over its visible keys in fp32.
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/mla_decode.h"
#include "ops/paged_cache_cpu.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "mla_decode_cpu";

void check_args(const MlaDecodeArgs& a, const MlaDecodeOutputs& o) {
  cpu::check_f32_or_bf16(kOp, "q", a.q);
  cpu::check_f32_or_bf16(kOp, "kv_cache", a.kv_cache);
  cpu::check_f32(kOp, "out", o.out);
  cpu::check_f32(kOp, "lse", o.lse);
  MLA_CHECK(a.q.ndim() == 3 && a.kv_cache.ndim() == 3,
            "{}: q {} must be [T, n_heads, D] and kv_cache {} [num_blocks, block_size, D]", kOp,
            shape_str(a.q.shape()), shape_str(a.kv_cache.shape()));
  const int64_t t = a.q.dim(0), n = a.q.dim(1), d = a.q.dim(2);
  MLA_CHECK(a.kv_cache.dim(2) == d, "{}: q {} and kv_cache {} disagree on the row width", kOp,
            shape_str(a.q.shape()), shape_str(a.kv_cache.shape()));
  MLA_CHECK(a.kv_cache.dim(1) > 0, "{}: kv_cache {} has empty blocks", kOp, shape_str(a.kv_cache.shape()));
  MLA_CHECK(o.out.ndim() == 3 && o.out.dim(0) == t && o.out.dim(1) == n && o.out.dim(2) > 0 &&
                o.out.dim(2) <= d,
            "{}: out {} must be [T, n_heads, latent <= {}] for q {}", kOp, shape_str(o.out.shape()), d,
            shape_str(a.q.shape()));
  cpu::check_shape(kOp, "lse", o.lse, {t, n});
  MLA_CHECK(std::isfinite(a.softmax_scale) && a.softmax_scale > 0.0f,
            "{}: softmax_scale must be positive and finite, got {}", kOp, a.softmax_scale);
  cpu::check_decode_batch(kOp, a.block_table, a.seq_lens, a.query_start, t, a.kv_cache.dim(1), a.kv_cache.dim(0));
}

}  // namespace

void mla_decode_cpu(const MlaDecodeArgs& args, MlaDecodeOutputs& outputs) {
  check_args(args, outputs);
  const int64_t n = args.q.dim(1), d = args.q.dim(2), dv = outputs.out.dim(2);
  const int64_t block_size = args.kv_cache.dim(1), max_blocks = args.block_table.dim(1);
  const int32_t* qs = args.query_start.data<int32_t>();
  const int32_t* lens = args.seq_lens.data<int32_t>();
  const int32_t* table = args.block_table.data<int32_t>();
  float* out = outputs.out.data<float>();
  float* lse = outputs.lse.data<float>();

  // Sequences are independent: split over threads (cpu::parallel_for), by their mean work.
  const int64_t batch = args.block_table.dim(0);
  int64_t work = 0;  // multiply-adds: per query token and head, ~2 passes over its visible keys
  for (int64_t b = 0; b < batch; ++b) work += int64_t{lens[b]} * (qs[b + 1] - qs[b]) * n * (d + dv);
  cpu::parallel_for(batch, batch > 0 ? work / batch : 0, [&](int64_t b0, int64_t b1) {
    std::vector<float> keys, scores, acc, q_scratch, row_scratch;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t seq_len = lens[b], q_len = qs[b + 1] - qs[b];
      keys.resize(static_cast<size_t>(seq_len * d));  // [seq_len, D], in position order
      for (int64_t p = 0; p < seq_len; ++p) {
        const int64_t block = table[b * max_blocks + p / block_size];
        const int64_t row = (block * block_size + p % block_size) * d;
        const float* src = cpu::f32_span(args.kv_cache, row, d, row_scratch);
        std::copy(src, src + d, keys.begin() + p * d);
      }
      for (int64_t j = 0; j < q_len; ++j) {
        const int64_t t = qs[b] + j;
        const int64_t visible = seq_len - q_len + j + 1;  // bottom-right causal mask
        scores.resize(static_cast<size_t>(visible));
        for (int64_t h = 0; h < n; ++h) {
          const float* q = cpu::f32_span(args.q, (t * n + h) * d, d, q_scratch);
          float max_score = -std::numeric_limits<float>::infinity();
          for (int64_t s = 0; s < visible; ++s) {
            scores[s] = args.softmax_scale * cpu::dot(q, &keys[s * d], d);
            max_score = std::max(max_score, scores[s]);
          }
          acc.assign(static_cast<size_t>(dv), 0.0f);
          float sum = 0.0f;
          for (int64_t s = 0; s < visible; ++s) {
            const float p = std::exp(scores[s] - max_score);
            sum += p;
            cpu::axpy(p, &keys[s * d], acc.data(), dv);
          }
          float* o = out + (t * n + h) * dv;
          for (int64_t c = 0; c < dv; ++c) o[c] = acc[c] / sum;
          lse[t * n + h] = max_score + std::log(sum);
        }
      }
    }
  });
}

}  // namespace mlaserve::ops
