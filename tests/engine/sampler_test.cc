// The CPU sampler: penalty semantics (vLLM's / Hugging Face's), logprobs from the raw logits,
// top-n ordering, and the counter-based draw keyed by the request's output length.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "engine/sampler.h"
#include "ops/sampling.h"

namespace mlaserve {
namespace {

Tensor row_of(const std::vector<float>& v) {
  return Tensor::from_floats(v, {1, static_cast<int64_t>(v.size())}, DType::kF32);
}

SampledToken sample_one(Tensor& logits, const SamplerRow& row) { return sample_tokens(logits, {&row, 1}).front(); }

TEST(Sampler, RepetitionPenaltyScalesLogitsOfEveryTokenSeenTowardsZero) {
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  const std::vector<int32_t> prompt{0, 1}, output{1, 2};
  std::vector<float> logits{4.0f, -4.0f, 1.0f, 3.0f};
  adjust_logits(logits, SamplerRow{&p, prompt, output, 0});
  EXPECT_EQ(logits, (std::vector<float>{2.0f, -8.0f, 0.5f, 3.0f}));
}

TEST(Sampler, FrequencyAndPresencePenaltiesCountOnlyGeneratedTokens) {
  SamplingParams p;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  const std::vector<int32_t> prompt{3, 3, 3}, output{1, 1, 2};
  std::vector<float> logits{0.0f, 0.0f, 0.0f, 0.0f};
  adjust_logits(logits, SamplerRow{&p, prompt, output, 0});
  EXPECT_EQ(logits, (std::vector<float>{0.0f, -1.25f, -0.75f, 0.0f}));
}

TEST(Sampler, LogitBiasIsAddedBeforeThePenalties) {
  SamplingParams p;
  p.logit_bias = {{0, 2.0f}, {3, -1.5f}};
  p.repetition_penalty = 2.0f;
  const std::vector<int32_t> prompt{0}, output{};
  std::vector<float> logits{4.0f, 1.0f, 1.0f, 1.0f};
  adjust_logits(logits, SamplerRow{&p, prompt, output, 0});
  EXPECT_EQ(logits, (std::vector<float>{3.0f, 1.0f, 1.0f, -0.5f}));  // token 0: (4 + 2) / 2
}

TEST(Sampler, LogitBiasBansAndForcesTokensButLeavesLogprobsRaw) {
  const std::vector<float> raw{1.0f, 3.0f, 2.0f, -1.0f};
  SamplingParams p;
  p.temperature = 0.0f;
  p.logprobs = 1;
  p.logit_bias = {{1, -100.0f}};  // the argmax, banned
  Tensor logits = row_of(raw);
  SampledToken t = sample_one(logits, SamplerRow{&p, {}, {}, 0});
  EXPECT_EQ(t.token, 2);
  ASSERT_TRUE(t.logprobs);
  EXPECT_EQ(t.logprobs->top[0].token, 1);  // raw: before the bias
  p.logit_bias = {{3, 100.0f}};  // the least likely, forced
  p.temperature = 1.0f;
  for (uint64_t seed : {1u, 2u, 3u}) {
    Tensor row = row_of(raw);
    EXPECT_EQ(sample_one(row, SamplerRow{&p, {}, {}, seed}).token, 3);
  }
  EXPECT_FALSE(samples_on_gpu(p));
  EXPECT_TRUE(samples_on_gpu(SamplingParams{}));
}

TEST(Sampler, TopLogprobsAreBestFirstWithTiesToTheLowerId) {
  const std::vector<float> lp{-2.0f, -1.0f, -3.0f, -1.0f, -0.5f};
  std::vector<TokenLogprob> top = top_logprobs(lp, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].token, 4);
  EXPECT_EQ(top[1].token, 1);
  EXPECT_EQ(top[2].token, 3);
  EXPECT_EQ(top_logprobs(lp, 0).size(), 0u);
  EXPECT_EQ(top_logprobs(lp, 9).size(), 5u);
}

TEST(Sampler, LogprobsComeFromTheRawLogitsBeforePenaltiesAndTemperature) {
  const std::vector<float> raw{1.0f, 2.0f, 0.5f, -1.0f};
  SamplingParams p;
  p.temperature = 0.0f;
  p.repetition_penalty = 4.0f;  // pushes token 1 (in the prompt) below token 0
  p.logprobs = 2;
  const std::vector<int32_t> prompt{1};
  Tensor logits = row_of(raw);
  SampledToken t = sample_one(logits, SamplerRow{&p, prompt, {}, 0});
  EXPECT_EQ(t.token, 0);
  double z = 0;
  for (float x : raw) z += std::exp(double(x));
  ASSERT_TRUE(t.logprobs);
  EXPECT_NEAR(t.logprobs->sampled.logprob, 1.0 - std::log(z), 1e-6);
  ASSERT_EQ(t.logprobs->top.size(), 2u);
  EXPECT_EQ(t.logprobs->top[0].token, 1);
  EXPECT_NEAR(t.logprobs->top[0].logprob, 2.0 - std::log(z), 1e-6);
  EXPECT_EQ(t.logprobs->top[1].token, 0);
}

TEST(Sampler, TheDrawIsKeyedBySeedAndTheNumberOfTokensGenerated) {
  std::vector<float> raw(50);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<float>(std::sin(double(i)));
  SamplingParams p;
  p.temperature = 1.0f;
  const std::vector<int32_t> prompt{1, 2, 3};
  for (uint64_t seed : {1u, 2u, 99u}) {
    for (size_t generated = 0; generated < 6; ++generated) {
      const std::vector<int32_t> output(generated, 7);
      Tensor a = row_of(raw);
      const int32_t got = sample_one(a, SamplerRow{&p, prompt, output, seed}).token;
      Tensor b = row_of(raw), id = Tensor::empty({1}, DType::kI32);
      const ops::SamplingOptions o{1.0f, 0, 1.0f, 0.0f};
      const ops::SamplingKey key{seed, generated};
      ops::sample_cpu(b, std::span(&o, 1), std::span(&key, 1), id);
      EXPECT_EQ(got, id.data<int32_t>()[0]);
      EXPECT_FALSE(sample_one(a, SamplerRow{&p, prompt, output, seed}).logprobs);
    }
  }
}

// Temperatures below 1e-5 are greedy: far below, logits / t overflowed to inf and the request
// failed ("the best logit is inf").
TEST(Sampler, TinyTemperaturesAreGreedy) {
  std::vector<float> raw(50);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = 40.0f * static_cast<float>(std::sin(double(i)));
  const auto best = static_cast<int32_t>(std::max_element(raw.begin(), raw.end()) - raw.begin());
  for (const float t : {1e-38f, 1e-30f, 9e-6f}) {
    SamplingParams p;
    p.temperature = t;
    Tensor a = row_of(raw);
    EXPECT_EQ(sample_one(a, SamplerRow{&p, {}, {}, 5}).token, best) << t;
  }
}

// Rows sampled together (side by side on the host's cores at DeepSeek's vocabulary) get the
// tokens and logprobs each gets alone; a fully masked row gets -1 and leaves the others be.
TEST(Sampler, RowsTogetherAsEachAlone) {
  constexpr int64_t kRows = 9, kVocab = 129280;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> raw(static_cast<size_t>(kRows * kVocab));
  for (float& x : raw) x = normal(rng);
  std::fill_n(raw.begin() + 4 * kVocab, kVocab, -std::numeric_limits<float>::infinity());  // row 4: all masked
  const std::vector<int32_t> prompt{5, 6, 7}, output{8, 8, 9};
  std::vector<SamplingParams> params(kRows);
  for (int64_t i = 0; i < kRows; ++i) {
    SamplingParams& p = params[static_cast<size_t>(i)];
    p.temperature = i == 0 ? 0.0f : 0.5f + 0.1f * static_cast<float>(i);
    p.top_k = i % 3 == 1 ? 40 : 0;
    p.top_p = i % 3 == 2 ? 0.9f : 1.0f;
    p.presence_penalty = 0.5f;
    p.repetition_penalty = i % 2 == 0 ? 1.2f : 1.0f;
    if (i % 4 == 3) p.logprobs = 3;
  }
  std::vector<SamplerRow> rows;
  for (int64_t i = 0; i < kRows; ++i) rows.push_back({&params[static_cast<size_t>(i)], prompt, output, uint64_t(40 + i)});
  Tensor all = Tensor::from_floats(raw, {kRows, kVocab}, DType::kF32);
  const std::vector<SampledToken> together = sample_tokens(all, rows);
  ASSERT_EQ(together.size(), static_cast<size_t>(kRows));
  for (int64_t i = 0; i < kRows; ++i) {
    SCOPED_TRACE(i);
    Tensor one = Tensor::from_floats(std::vector<float>(raw.begin() + i * kVocab, raw.begin() + (i + 1) * kVocab),
                                     {1, kVocab}, DType::kF32);
    const SampledToken alone = sample_one(one, rows[static_cast<size_t>(i)]);
    EXPECT_EQ(together[static_cast<size_t>(i)].token, alone.token);
    EXPECT_EQ(together[static_cast<size_t>(i)].logprobs.has_value(), alone.logprobs.has_value());
    if (alone.logprobs) {
      EXPECT_EQ(together[static_cast<size_t>(i)].logprobs->sampled.logprob, alone.logprobs->sampled.logprob);
    }
  }
  EXPECT_EQ(together[4].token, -1);
  EXPECT_GE(together[5].token, 0);
}

TEST(Sampler, ValidateNamesTheBadField) {
  SamplingParams p;
  p.top_p = 0.0f;
  try {
    validate(p, 20, 100);
    FAIL() << "top_p = 0 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("top_p"), std::string::npos);
  }
  p = {};
  p.logprobs = 21;
  EXPECT_THROW(validate(p, 20, 100), Error);
  p = {};
  p.stop_token_ids = {100};
  EXPECT_THROW(validate(p, 20, 100), Error);
  p = {};
  p.max_tokens = 0;
  EXPECT_THROW(validate(p, 20, 100), Error);
  p = {};
  p.stop = {""};
  EXPECT_THROW(validate(p, 20, 100), Error);
  p = {};
  p.presence_penalty = 2.5f;
  EXPECT_THROW(validate(p, 20, 100), Error);
  p = {};
  p.logit_bias = {{100, 1.0f}};  // outside the vocabulary
  EXPECT_THROW(validate(p, 20, 100), Error);
  p.logit_bias = {{5, 100.5f}};
  EXPECT_THROW(validate(p, 20, 100), Error);
  p.logit_bias = {{5, 1.0f}, {5, 2.0f}};  // one token twice
  EXPECT_THROW(validate(p, 20, 100), Error);
  p.logit_bias = {{5, -100.0f}, {99, 100.0f}};
  EXPECT_NO_THROW(validate(p, 20, 100));
  EXPECT_NO_THROW(validate(SamplingParams{}, 20, 100));
}

}  // namespace
}  // namespace mlaserve
