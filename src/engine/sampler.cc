#include "engine/sampler.h"

#include <algorithm>
#include <numeric>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "core/memory.h"
#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.h"
#endif

#include "ops/sampling.h"

namespace mlaserve {
namespace {

// The op's options for a request's. Temperatures below 1e-5 sample greedily (as vLLM's): the
// distribution is a point mass but for near-ties anyway, and far below that logits / t
// overflows to inf, which the op refuses.
ops::SamplingOptions op_options(const SamplingParams& p) {
  constexpr float kGreedyBelow = 1e-5f;
  return {p.temperature < kGreedyBelow ? 0.0f : p.temperature, p.top_k, p.top_p, p.min_p};
}

// The sampled token's and the top n entries of a log-softmax row [1, V].
TokenLogprobs logprobs_of(const Tensor& logprobs, int32_t token, int32_t n) {
  const std::span<const float> lp(logprobs.data<float>(), static_cast<size_t>(logprobs.numel()));
  return TokenLogprobs{{token, lp[static_cast<size_t>(token)]}, top_logprobs(lp, n)};
}

}  // namespace

void adjust_logits(std::span<float> logits, const SamplerRow& row) {
  const SamplingParams& p = *row.params;
  const auto v = static_cast<int64_t>(logits.size());
  for (const auto& [t, bias] : p.logit_bias) {
    if (t >= 0 && t < v) logits[static_cast<size_t>(t)] += bias;
  }
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

std::vector<SampledToken> sample_tokens(Tensor& logits, std::span<const SamplerRow> rows) {
  MLA_CHECK(logits.is_cpu() && logits.dtype() == DType::kF32 && logits.ndim() == 2 &&
                logits.dim(0) == static_cast<int64_t>(rows.size()),
            "sample_tokens: logits {} must be [{}, V] f32 on the host", shape_str(logits.shape()), rows.size());
  const int64_t v = logits.dim(1);
  std::vector<Tensor> logprobs(rows.size());
  std::vector<ops::SamplingOptions> options;
  std::vector<ops::SamplingKey> keys;
  for (size_t i = 0; i < rows.size(); ++i) {
    const SamplingParams& p = *rows[i].params;
    Tensor row = logits.slice(static_cast<int64_t>(i), static_cast<int64_t>(i) + 1);
    if (p.logprobs) {
      logprobs[i] = Tensor::empty(row.shape(), DType::kF32);
      ops::log_softmax_cpu(row, logprobs[i]);  // raw: before penalties and temperature
    }
    adjust_logits(std::span(row.data<float>(), static_cast<size_t>(v)), rows[i]);
    options.push_back(op_options(p));
    keys.push_back({rows[i].seed, static_cast<uint64_t>(rows[i].output.size())});
  }
  Tensor tokens = Tensor::empty({static_cast<int64_t>(rows.size())}, DType::kI32);
  ops::sample_cpu(logits, options, keys, tokens);  // the rows side by side on the host's cores

  std::vector<SampledToken> out;
  for (size_t i = 0; i < rows.size(); ++i) {
    SampledToken& t = out.emplace_back(SampledToken{tokens.data<int32_t>()[i], std::nullopt});
    if (t.token >= 0 && rows[i].params->logprobs) t.logprobs = logprobs_of(logprobs[i], t.token, *rows[i].params->logprobs);
  }
  return out;
}

bool samples_on_gpu(const SamplingParams& p) {
  return p.repetition_penalty == 1.0f && p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f &&
         p.logit_bias.empty();
}

namespace {

DevicePool* sampling_pool() {
  static DevicePool* pool = new_device_pool();
  return pool;
}

// ids [B] i32 on the GPU -> host, once the work queued on `stream` has run (off the legacy
// stream: that work only).
std::vector<int32_t> download_ids(const Tensor& ids, Stream stream) {
  std::vector<int32_t> out(static_cast<size_t>(ids.numel()));
#ifdef MLASERVE_WITH_CUDA
  const auto s = static_cast<cudaStream_t>(stream.cuda);
  MLA_CUDA_CHECK(cudaMemcpyAsync(out.data(), ids.raw(), ids.nbytes(), cudaMemcpyDeviceToHost, s));
  MLA_CUDA_CHECK(cudaStreamSynchronize(s));
#else
  (void)ids;  // no GPU tensors without CUDA: sample_tokens_gpu is never called
  (void)stream;
#endif
  return out;
}

}  // namespace

std::vector<int32_t> sample_tokens_gpu(const Tensor& logits, std::span<const SamplerRow> rows, Stream stream) {
  MLA_CHECK(logits.ndim() == 2 && logits.dim(0) == static_cast<int64_t>(rows.size()),
            "sample_tokens_gpu: logits {} for {} rows", shape_str(logits.shape()), rows.size());
  if (std::none_of(rows.begin(), rows.end(), [](const SamplerRow& r) { return samples_on_gpu(*r.params); })) return {};
  std::vector<ops::SamplingOptions> options;
  std::vector<ops::SamplingKey> keys;
  for (const SamplerRow& r : rows) {
    const SamplingParams& p = *r.params;
    // Rows left to the host take the cheapest path (greedy); their token is discarded.
    options.push_back(samples_on_gpu(p) ? op_options(p) : ops::SamplingOptions{0.0f, 0, 1.0f, 0.0f});
    keys.push_back({r.seed, static_cast<uint64_t>(r.output.size())});
  }
  std::optional<DevicePoolScope> pool;
  if (stream.cuda != nullptr) pool.emplace(sampling_pool());
  Tensor ids = Tensor::empty({logits.dim(0)}, DType::kI32, logits.device());
  ops::sample(logits, options, keys, ids, stream);  // all-greedy batches take the argmax kernel alone
  std::vector<int32_t> tokens = download_ids(ids, stream);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!samples_on_gpu(*rows[i].params)) tokens[i] = -1;
  }
  return tokens;
}

TokenLogprobs token_logprobs(const Tensor& logits, int32_t token, int32_t n) {
  Tensor logprobs = Tensor::empty(logits.shape(), DType::kF32);
  ops::log_softmax_cpu(logits, logprobs);
  return logprobs_of(logprobs, token, n);
}

}  // namespace mlaserve
