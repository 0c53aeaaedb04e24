// The engine on the tiny reference models (tests/data, CPU): many concurrent requests of mixed
// lengths with chunked prefill give Hugging Face's greedy continuations (the golden files) and
// the single-sequence reference loop's tokens (engine/generate.h, itself checked against the
// goldens); prefix-cache hits give the tokens of a cold run; sequences preempted and recomputed
// in a tiny block pool give the tokens of uninterrupted ones.
//
// Tolerance: none. A batch changes only the order of some fp32 sums (~1e-6 on the logits); the
// greedy paths' top-1/top-2 margins are >= 8e-3 (tests/data/golden/*.json), so tokens must be
// equal.
#include <gtest/gtest.h>

#include <random>

#include "../model/tiny_models.h"
#include "engine/deepseek_runner.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "in_flight_runner.h"

namespace mlaserve {
namespace {

constexpr int64_t kB = kCacheBlockSize;

std::vector<int32_t> reference(DeepSeekModel& model, const std::vector<int32_t>& prompt, int64_t n) {
  GenerateOptions opt;
  opt.max_tokens = n;
  opt.sampling.temperature = 0.0f;
  return generate(model, prompt, opt).ids;
}

SamplingParams greedy(int64_t max_tokens) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;  // as the references
  return p;
}

std::vector<int32_t> all_tokens(RequestStream& s) {
  std::vector<int32_t> out;
  while (auto ev = s.try_next()) out.insert(out.end(), ev->token_ids.begin(), ev->token_ids.end());
  return out;
}

void run_to_completion(Engine& e) {
  while (e.has_unfinished()) e.step();
}

std::vector<int32_t> random_prompt(std::mt19937_64& rng, int64_t n, int64_t vocab) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int32_t& t : p) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  return p;
}

class EngineOnTinyModels : public ::testing::TestWithParam<std::string> {};

// in_flight > 1: the runner is pipelined (testing::InFlightRunner), as a model split into
// pipeline stages is: the engine schedules the next steps from other sequences while a step is
// in flight, and the tokens must not change.
void check_sixteen_requests(const std::string& name, int in_flight) {
  DeepSeekModel model = testing::load_tiny_model(name, LoadOptions{DType::kF32, Fp8Mode::kDequantize, std::nullopt});
  const std::vector<testing::GoldenPrompt> golden = testing::load_golden(name);
  DeepSeekRunner model_runner(model, 96);
  testing::InFlightRunner runner(model_runner, in_flight, 17);
  EngineOptions options;
  options.scheduler = {/*max_num_batched_tokens=*/96, /*max_num_seqs=*/16, /*chunked_prefill=*/true};
  Engine engine(runner, options);

  struct Expected {
    std::shared_ptr<RequestStream> stream;
    std::vector<int32_t> tokens;
  };
  std::vector<Expected> requests;
  for (int copy = 0; copy < 2; ++copy) {  // each golden prompt twice: the second hits the cache
    for (const testing::GoldenPrompt& g : golden) {
      requests.push_back({engine.add_request({g.prompt, greedy(static_cast<int64_t>(g.greedy.size())), nullptr}),
                          g.greedy});
    }
  }
  std::mt19937_64 rng(11);
  while (requests.size() < 16) {
    const std::vector<int32_t> prompt = random_prompt(rng, 1 + static_cast<int64_t>(rng() % 200), model.config().vocab_size);
    const auto n = 1 + static_cast<int64_t>(rng() % 16);
    requests.push_back({engine.add_request({prompt, greedy(n), nullptr}), reference(model, prompt, n)});
  }
  run_to_completion(engine);
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(all_tokens(*requests[i].stream), requests[i].tokens) << "request " << i;
  }
  const EngineStats s = engine.stats();
  if (in_flight == 1) {
    EXPECT_GT(s.prefix_hit_tokens, 0);  // in flight, the copies come before the first are indexed
  }
  EXPECT_EQ(s.num_free_blocks, 96);
  EXPECT_LE(s.num_scheduled_tokens, s.num_steps * 96);
  EXPECT_EQ(runner.max_seen, in_flight);
}

TEST_P(EngineOnTinyModels, SixteenConcurrentRequestsWithChunkedPrefillMatchTheReferences) {
  check_sixteen_requests(GetParam(), 1);
}

TEST_P(EngineOnTinyModels, AndWithThreeStepsInFlight) { check_sixteen_requests(GetParam(), 3); }

INSTANTIATE_TEST_SUITE_P(Golden, EngineOnTinyModels, ::testing::ValuesIn(testing::tiny_model_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

// Requests sharing prefixes of different lengths, one after another: with prefix caching the
// later ones compute only their new blocks, and every token equals the cold run's.
TEST(EngineOnTinyModel, PrefixCacheHitsGiveTheTokensOfAColdRun) {
  for (const std::string name : {"tiny-v2-lite", "tiny-v3"}) {
    SCOPED_TRACE(name);
    DeepSeekModel model = testing::load_tiny_model(name);
    const std::vector<int32_t> base = testing::load_golden(name).back().prompt;  // 300 tokens
    std::mt19937_64 rng(5);
    std::vector<std::vector<int32_t>> prompts{base};
    for (int64_t keep : {300, 200, 64, 129}) {
      std::vector<int32_t> p(base.begin(), base.begin() + keep);
      const std::vector<int32_t> tail =
          random_prompt(rng, 1 + static_cast<int64_t>(rng() % 70), model.config().vocab_size);
      p.insert(p.end(), tail.begin(), tail.end());
      prompts.push_back(p);
    }
    prompts.push_back(base);

    auto run = [&](bool prefix_caching, std::vector<int64_t>* cached) {
      DeepSeekRunner runner(model, 32);
      EngineOptions options;
      options.scheduler = {128, 8, true};
      options.enable_prefix_caching = prefix_caching;
      Engine engine(runner, options);
      std::vector<std::vector<int32_t>> out;
      for (const std::vector<int32_t>& p : prompts) {
        auto s = engine.add_request({p, greedy(12), nullptr});
        run_to_completion(engine);
        int64_t hit = 0;
        std::vector<int32_t> tokens;
        while (auto ev = s->try_next()) {
          tokens.insert(tokens.end(), ev->token_ids.begin(), ev->token_ids.end());
          hit = ev->num_cached_tokens;
        }
        out.push_back(tokens);
        if (cached) cached->push_back(hit);
      }
      return out;
    };
    std::vector<int64_t> cached;
    const std::vector<std::vector<int32_t>> warm = run(true, &cached);
    const std::vector<std::vector<int32_t>> cold = run(false, nullptr);
    EXPECT_EQ(warm, cold);
    EXPECT_EQ(cached, (std::vector<int64_t>{0, 4 * kB, 3 * kB, kB, 2 * kB, 4 * kB}));
    EXPECT_EQ(cold[0], reference(model, prompts[0], 12));
  }
}

// A block pool of 8 blocks for 6 requests of ~2-3 blocks each: sequences are preempted
// (their blocks freed) and recomputed, and still produce the uninterrupted tokens.
TEST(EngineOnTinyModel, PreemptedAndRecomputedSequencesGiveTheUninterruptedTokens) {
  for (const std::string name : {"tiny-v2-lite", "tiny-v3"}) {
    SCOPED_TRACE(name);
    DeepSeekModel model = testing::load_tiny_model(name);
    DeepSeekRunner runner(model, 8);
    EngineOptions options;
    options.scheduler = {256, 8, true};
    options.enable_prefix_caching = false;  // recompute everything
    Engine engine(runner, options);
    std::mt19937_64 rng(21);
    std::vector<std::vector<int32_t>> prompts;
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (int i = 0; i < 6; ++i) {
      prompts.push_back(random_prompt(rng, 60 + static_cast<int64_t>(rng() % 90), model.config().vocab_size));
      streams.push_back(engine.add_request({prompts.back(), greedy(24), nullptr}));
    }
    run_to_completion(engine);
    EXPECT_GT(engine.stats().num_preemptions, 0);
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ(all_tokens(*streams[i]), reference(model, prompts[i], 24)) << "request " << i;
    }
  }
}

}  // namespace
}  // namespace mlaserve
