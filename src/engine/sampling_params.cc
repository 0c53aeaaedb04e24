#include "engine/sampling_params.h"

#include <cmath>
#include <unordered_set>

#include "core/error.h"

namespace mlaserve {

void validate(const SamplingParams& p, int32_t max_logprobs, int64_t vocab_size) {
  MLA_CHECK(!p.max_tokens || *p.max_tokens >= 1, "max_tokens must be at least 1, got {}", p.max_tokens.value_or(0));
  MLA_CHECK(std::isfinite(p.temperature) && p.temperature >= 0.0f, "temperature must be >= 0, got {}",
            p.temperature);
  MLA_CHECK(p.top_p > 0.0f && p.top_p <= 1.0f, "top_p must be in (0, 1], got {}", p.top_p);
  MLA_CHECK(p.top_k >= 0, "top_k must be >= 0 (0: off), got {}", p.top_k);
  MLA_CHECK(p.min_p >= 0.0f && p.min_p <= 1.0f, "min_p must be in [0, 1], got {}", p.min_p);
  MLA_CHECK(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f, "presence_penalty must be in [-2, 2], got {}",
            p.presence_penalty);
  MLA_CHECK(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f,
            "frequency_penalty must be in [-2, 2], got {}", p.frequency_penalty);
  MLA_CHECK(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0.0f,
            "repetition_penalty must be > 0, got {}", p.repetition_penalty);
  MLA_CHECK(!p.logprobs || (*p.logprobs >= 0 && *p.logprobs <= max_logprobs), "logprobs must be in [0, {}], got {}",
            max_logprobs, p.logprobs.value_or(0));
  for (int32_t id : p.stop_token_ids) {
    MLA_CHECK(id >= 0 && id < vocab_size, "stop token id {} outside the vocabulary [0, {})", id, vocab_size);
  }
  for (const std::string& s : p.stop) MLA_CHECK(!s.empty(), "stop strings must not be empty");
  std::unordered_set<int32_t> biased;
  for (const auto& [id, bias] : p.logit_bias) {
    MLA_CHECK(id >= 0 && id < vocab_size, "logit_bias token id {} outside the vocabulary [0, {})", id, vocab_size);
    MLA_CHECK(std::isfinite(bias) && bias >= -100.0f && bias <= 100.0f, "logit_bias of token {} must be in [-100, 100], got {}",
              id, bias);
    MLA_CHECK(biased.insert(id).second, "logit_bias names token id {} twice", id);
  }
}

}  // namespace mlaserve
