#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/rank_order.h"
#include "ops/sampling.h"

namespace mlaserve::ops {
namespace {

// Checks logits [B, V] f32 and token_ids [B] i32; returns V.
int64_t check_logits(std::string_view op, const Tensor& logits, const Tensor& token_ids) {
  cpu::check_f32(op, "logits", logits);
  cpu::check_host(op, "token_ids", token_ids);
  MLA_CHECK(logits.ndim() == 2 && logits.dim(1) >= 1, "{}: logits {} must be [B, V], V >= 1", op,
            shape_str(logits.shape()));
  MLA_CHECK(token_ids.dtype() == DType::kI32, "{}: token_ids must be I32, got {}", op,
            dtype_name(token_ids.dtype()));
  cpu::check_shape(op, "token_ids", token_ids, {logits.dim(0)});
  return logits.dim(1);
}

int32_t argmax(const float* row, int64_t v) {
  return static_cast<int32_t>(std::max_element(row, row + v) - row);  // first maximum
}

int32_t sample_row(const float* logits, int64_t v, const SamplingOptions& opt, const SamplingKey& key) {
  if (opt.temperature <= 0.0f) return argmax(logits, v);
  std::vector<float> z(logits, logits + v);
  for (float& x : z) x /= opt.temperature;
  const int64_t ranked = opt.top_k > 0 ? std::min(opt.top_k, v) : v;
  const std::vector<int32_t> order = rank_order(z, ranked);  // z descending, then id ascending
  const float max_z = z[order[0]];
  if (!std::isfinite(max_z)) return -1;  // every token masked (-inf), or NaN: as the GPU sampler

  std::vector<double> p(static_cast<size_t>(ranked));  // unnormalised, rank order; p[0] = 1
  for (int64_t i = 0; i < ranked; ++i) p[i] = std::exp(static_cast<double>(z[order[i]]) - max_z);
  int64_t kept = ranked;
  if (opt.top_p < 1.0f) {
    const double target = opt.top_p * std::accumulate(p.begin(), p.end(), 0.0);
    double mass = 0.0;
    for (int64_t i = 0; i < kept; ++i) {
      mass += p[i];
      if (mass >= target) {
        kept = i + 1;
        break;
      }
    }
  }
  if (opt.min_p > 0.0f) {
    for (int64_t i = 1; i < kept; ++i) {
      if (p[i] < opt.min_p * p[0]) {
        kept = i;
        break;
      }
    }
  }
  const double threshold = sampling_uniform(key) * std::accumulate(p.begin(), p.begin() + kept, 0.0);
  double mass = 0.0;
  for (int64_t i = 0; i < kept; ++i) {
    mass += p[i];
    if (threshold < mass) return order[i];
  }
  return order[kept - 1];
}

}  // namespace

void check_sampling_options(std::string_view op, const SamplingOptions* options, int64_t rows) {
  for (int64_t i = 0; i < rows; ++i) {
    const SamplingOptions& o = options[i];
    MLA_CHECK(std::isfinite(o.temperature) && o.top_k >= 0 && o.top_p > 0.0f && o.top_p <= 1.0f &&
                  o.min_p >= 0.0f && o.min_p <= 1.0f,
              "{}: row {} has invalid options (temperature {}, top_k {}, top_p {}, min_p {})", op, i,
              o.temperature, o.top_k, o.top_p, o.min_p);
  }
}

void greedy_sample_cpu(const Tensor& logits, Tensor& token_ids) {
  const int64_t v = check_logits("greedy_sample_cpu", logits, token_ids);
  for (int64_t b = 0; b < logits.dim(0); ++b) {
    token_ids.data<int32_t>()[b] = argmax(logits.data<float>() + b * v, v);
  }
}

void sample_cpu(const Tensor& logits, std::span<const SamplingOptions> options,
                std::span<const SamplingKey> keys, Tensor& token_ids) {
  constexpr std::string_view kOp = "sample_cpu";
  const int64_t v = check_logits(kOp, logits, token_ids);
  const int64_t b = logits.dim(0);
  MLA_CHECK(static_cast<int64_t>(options.size()) == b && static_cast<int64_t>(keys.size()) == b,
            "{}: {} options and {} keys for logits {}", kOp, options.size(), keys.size(),
            shape_str(logits.shape()));
  check_sampling_options(kOp, options.data(), b);
  // Rows side by side on the host's cores (~30 operations a token: a row of DeepSeek's vocabulary
  // takes a thread of its own); each row's token depends on that row alone.
  cpu::parallel_for(b, 32 * v, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      token_ids.data<int32_t>()[i] = sample_row(logits.data<float>() + i * v, v, options[i], keys[i]);
    }
  });
}

void log_softmax_cpu(const Tensor& logits, Tensor& out) {
  constexpr std::string_view kOp = "log_softmax_cpu";
  cpu::check_f32(kOp, "logits", logits);
  cpu::check_f32(kOp, "out", out);
  MLA_CHECK(logits.ndim() == 2 && logits.dim(1) >= 1, "{}: logits {} must be [B, V], V >= 1", kOp,
            shape_str(logits.shape()));
  cpu::check_shape(kOp, "out", out, logits.shape());
  const int64_t v = logits.dim(1);
  for (int64_t b = 0; b < logits.dim(0); ++b) {
    const float* row = logits.data<float>() + b * v;
    const float m = *std::max_element(row, row + v);
    double sum = 0.0;
    for (int64_t i = 0; i < v; ++i) sum += std::exp(static_cast<double>(row[i]) - m);
    const auto log_z = static_cast<float>(m + std::log(sum));
    float* o = out.data<float>() + b * v;
    for (int64_t i = 0; i < v; ++i) o[i] = row[i] - log_z;
  }
}

}  // namespace mlaserve::ops
