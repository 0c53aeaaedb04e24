#include "engine/sampler.h"

#include <algorithm>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "ops/sampling.h"

namespace mlaserve {

void apply_penalties(std::span<float> logits, const SamplerRow& row) {
  const SamplingParams& p = *row.params;
  const auto v = static_cast<int64_t>(logits.size());
  if (p.repetition_penalty != 1.0f) {
    std::unordered_set<int32_t> seen(row.prompt.begin(), row.prompt.end());
    seen.insert(row.output.begin(), row.output.end());
    for (int32_t t : seen) {
      if (t < 0 || t >= v) continue;
      float& x = logits[static_cast<size_t>(t)];
      x = x > 0.0f ? x / p.repetition_penalty : x * p.repetition_penalty;
    }
  }
  if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
    std::unordered_map<int32_t, int64_t> counts;
    for (int32_t t : row.output) ++counts[t];
    for (auto [t, n] : counts) {
      if (t < 0 || t >= v) continue;
      logits[static_cast<size_t>(t)] -= p.frequency_penalty * static_cast<float>(n) + p.presence_penalty;
    }
  }
}

std::vector<TokenLogprob> top_logprobs(std::span<const float> logprobs, int32_t n) {
  const auto k = std::min<size_t>(static_cast<size_t>(n), logprobs.size());
  std::vector<int32_t> ids(logprobs.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(), [&](int32_t a, int32_t b) {
    return logprobs[static_cast<size_t>(a)] > logprobs[static_cast<size_t>(b)] ||
           (logprobs[static_cast<size_t>(a)] == logprobs[static_cast<size_t>(b)] && a < b);
  });
  std::vector<TokenLogprob> top;
  for (size_t i = 0; i < k; ++i) top.push_back({ids[i], logprobs[static_cast<size_t>(ids[i])]});
  return top;
}

bool is_plain_greedy(const SamplingParams& p) {
  return p.temperature <= 0.0f && !p.logprobs && p.repetition_penalty == 1.0f &&
         p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f;
}

SampledToken sample_token(Tensor& logits, const SamplerRow& row) {
  MLA_CHECK(logits.ndim() == 2 && logits.dim(0) == 1, "sample_token: logits {} must be one row [1, V]",
            shape_str(logits.shape()));
  const SamplingParams& p = *row.params;
  const auto v = static_cast<size_t>(logits.dim(1));
  Tensor logprobs;
  if (p.logprobs) {
    logprobs = Tensor::empty(logits.shape(), DType::kF32);
    ops::log_softmax_cpu(logits, logprobs);  // raw: before penalties and temperature
  }
  apply_penalties(std::span(logits.data<float>(), v), row);

  const ops::SamplingOptions options{p.temperature, p.top_k, p.top_p, p.min_p};
  const ops::SamplingKey key{row.seed, static_cast<uint64_t>(row.output.size())};
  Tensor token = Tensor::empty({1}, DType::kI32);
  ops::sample_cpu(logits, std::span(&options, 1), std::span(&key, 1), token);

  SampledToken out{token.data<int32_t>()[0], std::nullopt};
  if (p.logprobs) {
    const std::span<const float> lp(logprobs.data<float>(), v);
    out.logprobs = TokenLogprobs{{out.token, lp[static_cast<size_t>(out.token)]}, top_logprobs(lp, *p.logprobs)};
  }
  return out;
}

}  // namespace mlaserve
