#include "engine/generate.h"

#include <algorithm>
#include <numeric>
#include <random>

namespace mlaserve {
namespace {

// Block ids 0 .. n-1, shuffled when a seed is given (tests exercise non-contiguous tables).
std::vector<int32_t> make_block_table(int64_t n, uint64_t shuffle_seed) {
  std::vector<int32_t> table(static_cast<size_t>(n));
  std::iota(table.begin(), table.end(), 0);
  if (shuffle_seed != 0) std::shuffle(table.begin(), table.end(), std::mt19937_64(shuffle_seed));
  return table;
}

// One step over tokens [begin, end) of `tokens` for a sequence with `begin` cached tokens.
ForwardBatch step_batch(std::span<const int32_t> tokens, int64_t begin, int64_t end,
                        const std::vector<int32_t>& table, std::vector<int32_t> logit_rows) {
  ForwardBatch b;
  for (int64_t p = begin; p < end; ++p) {
    b.token_ids.push_back(tokens[static_cast<size_t>(p)]);
    b.positions.push_back(static_cast<int32_t>(p));
    b.slot_mapping.push_back(int64_t{table[static_cast<size_t>(p / kCacheBlockSize)]} * kCacheBlockSize +
                             p % kCacheBlockSize);
  }
  b.sequences.push_back(SequenceSlice{0, static_cast<int32_t>(end - begin), static_cast<int32_t>(begin), table});
  b.logit_rows = std::move(logit_rows);
  return b;
}

// Logits are sampled on the host: GPU logits are copied back, host ones used as they are.
Tensor on_host(const Tensor& t) { return t.is_cpu() ? t : t.to(Device::kCPU); }

}  // namespace

GenerateResult generate(DeepSeekModel& model, std::span<const int32_t> prompt, const GenerateOptions& options) {
  const int64_t n = static_cast<int64_t>(prompt.size());
  MLA_CHECK(n > 0, "generate: empty prompt");
  MLA_CHECK(options.max_tokens >= 0, "generate: max_tokens must be >= 0, got {}", options.max_tokens);
  const int64_t vocab = model.config().vocab_size;
  for (int32_t id : prompt) MLA_CHECK(id >= 0 && id < vocab, "generate: prompt id {} outside the vocabulary [0, {})", id, vocab);
  for (int32_t r : options.prompt_logit_rows) MLA_CHECK(r >= 0 && r < n, "generate: logit row {} outside the prompt", r);

  const int64_t total = n + options.max_tokens;
  std::vector<int32_t> table = make_block_table((total + kCacheBlockSize - 1) / kCacheBlockSize, options.block_shuffle_seed);
  LatentCache cache = model.make_cache(static_cast<int64_t>(table.size()));
  std::vector<int32_t> tokens(prompt.begin(), prompt.end());
  tokens.reserve(static_cast<size_t>(total));

  GenerateResult result;
  result.prompt_logits = Tensor::empty({static_cast<int64_t>(options.prompt_logit_rows.size()), vocab}, DType::kF32);
  const int64_t chunk = options.prefill_chunk > 0 ? options.prefill_chunk : n;
  Tensor last;  // logits of the newest token, [1, V]
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t end = std::min(n, begin + chunk);
    std::vector<int32_t> rows, wanted;  // prompt rows of this chunk whose logits are wanted
    for (size_t i = 0; i < options.prompt_logit_rows.size(); ++i) {
      int32_t r = options.prompt_logit_rows[i];
      if (r >= begin && r < end) {
        rows.push_back(static_cast<int32_t>(r - begin));
        wanted.push_back(static_cast<int32_t>(i));
      }
    }
    rows.push_back(static_cast<int32_t>(end - 1 - begin));
    Tensor logits = on_host(model.forward(step_batch(tokens, begin, end, table, rows), cache));
    for (size_t i = 0; i < wanted.size(); ++i) {
      std::copy_n(logits.data<float>() + i * vocab, vocab, result.prompt_logits.data<float>() + wanted[i] * vocab);
    }
    last = logits.slice(logits.dim(0) - 1, logits.dim(0)).clone();
  }

  result.finish_reason = "length";
  for (int64_t step = 0; step < options.max_tokens; ++step) {
    Tensor next = Tensor::empty({1}, DType::kI32);
    ops::SamplingKey key{options.seed, static_cast<uint64_t>(step)};
    ops::sample_cpu(last, std::span(&options.sampling, 1), std::span(&key, 1), next);
    const int32_t id = next.data<int32_t>()[0];
    result.ids.push_back(id);
    result.step_logits.push_back(last.reshape({vocab}));
    if (std::find(options.stop_token_ids.begin(), options.stop_token_ids.end(), id) != options.stop_token_ids.end()) {
      result.finish_reason = "stop";
      break;
    }
    if (step + 1 == options.max_tokens) break;
    tokens.push_back(id);
    const int64_t p = static_cast<int64_t>(tokens.size()) - 1;
    last = on_host(model.forward(step_batch(tokens, p, p + 1, table, {0}), cache));
  }
  return result;
}

}  // namespace mlaserve
