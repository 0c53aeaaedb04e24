// KvCacheLayout::kMha (per-head K/V cached, issue #7) against the latent layout on the tiny
// reference models (CPU, f32): the same greedy tokens, and prompt and per-step logits within 1e-4,
//  - through generate(): whole and chunked prefill (the cached context gathered from the paged
//    MHA cache in 64-token chunks), then decode over the cache (paged_mha_decode), in every
//    attention form (kAbsorbed sends whole prefill chunks through the paged decode op; kMha sends
//    decode tokens through the prefill path);
//  - through the engine: sixteen concurrent requests with chunked prefill and prefix-cache hits,
//    so decode steps batch several sequences into one paged_mha_decode call.
// Both layouts compute the same attention in fp32 and differ only in summation order: the MHA
// layout up-projects K/V once per token where the latent one absorbs W_UK into the query
// (decode) or up-projects per chunk (prefill). ~1e-6 on logits of magnitude ~1-10; 1e-4 bounds it
// with room, far below the greedy paths' top-1/top-2 margins (>= 3e-3, tests/data/golden/*.json).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/deepseek_runner.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "tiny_models.h"

namespace mlaserve {
namespace {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double d = 0.0;
  for (int64_t i = 0; i < a.numel() && i < b.numel(); ++i) {
    const double x = a.data<float>()[i], y = b.data<float>()[i];
    if (!std::isfinite(x) || !std::isfinite(y)) return INFINITY;
    d = std::max(d, std::fabs(x - y));
  }
  return d;
}

DeepSeekModel tiny(const std::string& name, AttentionForm form, KvCacheLayout layout) {
  ModelOptions options;
  options.attention_form = form;
  options.kv_cache_layout = layout;
  options.context_chunk_tokens = 64;
  LoadOptions load;
  load.weight_dtype = DType::kF32;
  return testing::load_tiny_model(name, load, options);
}

struct Case {
  std::string model;
  AttentionForm form;
  int64_t prefill_chunk;
};

class MhaCacheLayout : public ::testing::TestWithParam<Case> {};

TEST_P(MhaCacheLayout, GenerateGivesTheLatentLayoutsTokensAndLogits) {
  const Case& c = GetParam();
  DeepSeekModel latent = tiny(c.model, c.form, KvCacheLayout::kLatent);
  DeepSeekModel mha = tiny(c.model, c.form, KvCacheLayout::kMha);
  const DeepSeekConfig& cfg = mha.config();
  EXPECT_EQ(mha.cache_row_dim(),
            cfg.num_attention_heads * (cfg.qk_nope_head_dim + cfg.qk_rope_head_dim + cfg.v_head_dim));
  EXPECT_EQ(latent.cache_row_dim(), cfg.kv_cache_dim);
  for (const testing::GoldenPrompt& g : testing::load_golden(c.model)) {
    SCOPED_TRACE("prompt of " + std::to_string(g.prompt.size()) + " tokens");
    GenerateOptions opt;
    opt.max_tokens = static_cast<int64_t>(g.greedy.size());
    opt.sampling.temperature = 0.0f;
    opt.prefill_chunk = c.prefill_chunk;
    opt.block_shuffle_seed = 7;
    opt.prompt_logit_rows = g.logit_rows;
    const GenerateResult want = generate(latent, g.prompt, opt);
    const GenerateResult got = generate(mha, g.prompt, opt);
    EXPECT_EQ(got.ids, want.ids);
    EXPECT_EQ(got.ids, g.greedy);
    EXPECT_LT(max_abs_diff(got.prompt_logits, want.prompt_logits), 1e-4);
    ASSERT_EQ(got.step_logits.size(), want.step_logits.size());
    for (size_t i = 0; i < got.step_logits.size(); ++i) {
      EXPECT_LT(max_abs_diff(got.step_logits[i], want.step_logits[i]), 1e-4) << "decode step " << i;
    }
  }
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const std::string m : {"tiny-v2-lite", "tiny-v3"}) {
    out.push_back({m, AttentionForm::kAuto, 0});
    out.push_back({m, AttentionForm::kAuto, 64});      // context from the cache, 64-token chunks
    out.push_back({m, AttentionForm::kAuto, 100});     // chunks not on block boundaries
    out.push_back({m, AttentionForm::kAbsorbed, 64});  // prefill chunks through paged_mha_decode
    out.push_back({m, AttentionForm::kMha, 64});       // decode tokens through the prefill path
  }
  return out;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  const AttentionForm f = info.param.form;
  std::string n = info.param.model + "_" +
                  (f == AttentionForm::kAuto ? "auto" : f == AttentionForm::kMha ? "mha" : "absorbed") + "_chunk" +
                  std::to_string(info.param.prefill_chunk);
  for (char& ch : n) ch = ch == '-' ? '_' : ch;
  return n;
}

INSTANTIATE_TEST_SUITE_P(TinyModels, MhaCacheLayout, ::testing::ValuesIn(cases()), case_name);

// Sixteen concurrent greedy requests (prompts of 1-300 tokens, each golden prompt twice so that
// the second hits the prefix cache) on the engine with chunked prefill: the same tokens in
// both layouts.
std::vector<std::vector<int32_t>> engine_tokens(DeepSeekModel& model, const std::string& name) {
  DeepSeekRunner runner(model, 96);
  EngineOptions options;
  options.scheduler = {/*max_num_batched_tokens=*/96, /*max_num_seqs=*/16, /*chunked_prefill=*/true};
  Engine engine(runner, options);
  std::vector<std::shared_ptr<RequestStream>> streams;
  auto greedy = [](int64_t n) {
    SamplingParams p;
    p.temperature = 0.0f;
    p.max_tokens = n;
    p.ignore_eos = true;
    return p;
  };
  for (int copy = 0; copy < 2; ++copy) {
    for (const testing::GoldenPrompt& g : testing::load_golden(name)) {
      streams.push_back(engine.add_request({g.prompt, greedy(static_cast<int64_t>(g.greedy.size())), nullptr}));
    }
  }
  std::mt19937_64 rng(11);
  while (streams.size() < 16) {
    std::vector<int32_t> prompt(1 + rng() % 200);
    for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(model.config().vocab_size));
    streams.push_back(engine.add_request({prompt, greedy(1 + static_cast<int64_t>(rng() % 16)), nullptr}));
  }
  while (engine.has_unfinished()) engine.step();
  EXPECT_GT(engine.stats().prefix_hit_tokens, 0);
  std::vector<std::vector<int32_t>> out;
  for (auto& s : streams) {
    std::vector<int32_t> ids;
    while (auto ev = s->try_next()) ids.insert(ids.end(), ev->token_ids.begin(), ev->token_ids.end());
    out.push_back(std::move(ids));
  }
  return out;
}

TEST(MhaCacheLayoutEngine, ConcurrentRequestsGiveTheLatentLayoutsTokens) {
  for (const std::string name : {"tiny-v2-lite", "tiny-v3"}) {
    SCOPED_TRACE(name);
    DeepSeekModel latent = tiny(name, AttentionForm::kAuto, KvCacheLayout::kLatent);
    DeepSeekModel mha = tiny(name, AttentionForm::kAuto, KvCacheLayout::kMha);
    const auto want = engine_tokens(latent, name);
    const auto got = engine_tokens(mha, name);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << "request " << i;
  }
}

}  // namespace
}  // namespace mlaserve
