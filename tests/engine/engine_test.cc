// The Engine over the fake runner: many concurrent requests give the tokens of uninterrupted
// runs whatever the pool size, prefix caching and preemption; seeded sampling does not depend
// on the batch; aborts free blocks in the same step; finish reasons, logprobs, stop strings,
// validation, failed steps, the batch layout, and the background loop with client threads.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>

#include "engine/engine.h"
#include "fake_runner.h"
#include "in_flight_runner.h"

namespace mlaserve {
namespace {

using testing::FakeRunner;
using testing::FakeRunnerOptions;
using testing::InFlightRunner;
using testing::reference_greedy;

constexpr int64_t kB = kCacheBlockSize;
constexpr int64_t kVocab = 101;

FakeRunnerOptions fake(int32_t num_blocks, std::vector<int32_t> eos = {}) {
  return FakeRunnerOptions{kVocab, num_blocks, 1 << 20, std::move(eos)};
}

EngineOptions engine_options(int64_t budget, int64_t max_seqs, bool prefix_caching, int64_t max_model_len) {
  EngineOptions o;
  o.scheduler = {budget, max_seqs, true};
  o.enable_prefix_caching = prefix_caching;
  o.max_model_len = max_model_len;
  return o;
}

struct Collected {
  std::vector<int32_t> tokens;
  std::string text;
  std::vector<RequestOutput> events;
  RequestOutput last;
};

Collected collect(RequestStream& s) {
  Collected c;
  while (auto ev = s.try_next()) {
    c.tokens.insert(c.tokens.end(), ev->token_ids.begin(), ev->token_ids.end());
    c.text += ev->text;
    c.events.push_back(*ev);
    c.last = *ev;
  }
  return c;
}

void run_to_completion(Engine& e) {
  for (int i = 0; e.has_unfinished(); ++i) {
    ASSERT_LT(i, 100000) << "the engine does not finish";
    e.step();
  }
}

std::vector<int32_t> prompt_of(std::mt19937_64& rng, const std::vector<int32_t>& prefix, int64_t extra) {
  std::vector<int32_t> p = prefix;
  for (int64_t i = 0; i < extra; ++i) p.push_back(static_cast<int32_t>(rng() % kVocab));
  return p;
}

struct PoolCase {
  int32_t num_blocks;
  bool prefix_caching;
  int64_t budget;
  bool preempts;  // the pool is small enough to force preemption
  bool hits;      // admission is staggered enough for prefix-cache hits
};

class EngineConcurrency : public ::testing::TestWithParam<PoolCase> {};

// 24 requests of mixed lengths (some sharing prefixes) submitted at once; a small pool forces
// preemption, a large one none; every request must get exactly the uninterrupted greedy tokens.
// With in_flight > 1 the runner is pipelined (InFlightRunner): the same tokens, and as many
// steps in flight as it allows.
void check_mixed_requests(const PoolCase& pc, int in_flight) {
  FakeRunner fake_runner(fake(pc.num_blocks));
  InFlightRunner runner(fake_runner, in_flight, 99);
  Engine engine(runner, engine_options(pc.budget, 16, pc.prefix_caching, 4 * kB));
  std::mt19937_64 rng(7);
  const std::vector<int32_t> shared = prompt_of(rng, {}, 150);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<int64_t> lengths;
  for (int i = 0; i < 24; ++i) {
    const std::vector<int32_t> prefix(shared.begin(), shared.begin() + static_cast<std::ptrdiff_t>(rng() % 150));
    prompts.push_back(prompt_of(rng, i % 3 == 0 ? prefix : std::vector<int32_t>{}, 1 + static_cast<int64_t>(rng() % 90)));
    lengths.push_back(1 + static_cast<int64_t>(rng() % 40));
    SamplingParams p;
    p.temperature = 0.0f;
    p.max_tokens = lengths.back();
    streams.push_back(engine.add_request({prompts.back(), p, nullptr}));
  }
  run_to_completion(engine);
  for (size_t i = 0; i < streams.size(); ++i) {
    Collected c = collect(*streams[i]);
    EXPECT_EQ(c.tokens, reference_greedy(prompts[i], lengths[i], kVocab)) << "request " << i;
    EXPECT_EQ(c.last.finish_reason, FinishReason::kLength);
    EXPECT_EQ(c.last.num_output_tokens, lengths[i]);
    EXPECT_EQ(c.events.size(), static_cast<size_t>(lengths[i]));  // one event per token
  }
  const EngineStats s = engine.stats();
  EXPECT_EQ(s.num_free_blocks, pc.num_blocks);
  EXPECT_EQ(s.num_running + s.num_waiting, 0);
  EXPECT_EQ(runner.max_seen > 1, in_flight > 1);  // steps were in flight (at most in_flight: the runner checks)
  if (in_flight == 1) {  // with steps in flight the interleaving differs, so these may too
    EXPECT_EQ(s.num_preemptions > 0, pc.preempts);
    EXPECT_EQ(s.prefix_hit_tokens > 0, pc.hits);
  }
}

TEST_P(EngineConcurrency, EveryRequestGetsTheTokensOfAnUninterruptedRun) { check_mixed_requests(GetParam(), 1); }

TEST_P(EngineConcurrency, WithStepsInFlightToo) {
  for (int k = 2; k <= 4; ++k) {
    SCOPED_TRACE(k);
    check_mixed_requests(GetParam(), k);
  }
}

INSTANTIATE_TEST_SUITE_P(Pools, EngineConcurrency,
                         ::testing::Values(PoolCase{256, true, 96, false, true}, PoolCase{256, false, 96, false, false},
                                           PoolCase{64, true, 4096, false, false}, PoolCase{6, true, 64, true, true},
                                           PoolCase{4, false, 33, true, false}, PoolCase{4, true, 7, true, true}));

TEST(Engine, SeededSamplingDoesNotDependOnTheBatchOrOnPreemption) {
  std::mt19937_64 rng(3);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 10; ++i) prompts.push_back(prompt_of(rng, {}, 20 + static_cast<int64_t>(rng() % 100)));
  auto params = [](uint64_t seed) {
    SamplingParams p;
    p.temperature = 1.5f;
    p.top_k = 20;
    p.seed = seed;
    p.max_tokens = 30;
    p.presence_penalty = 0.5f;
    return p;
  };
  std::vector<std::vector<int32_t>> alone;
  for (size_t i = 0; i < prompts.size(); ++i) {
    FakeRunner runner(fake(64));
    Engine engine(runner, engine_options(512, 16, false, 4 * kB));
    auto s = engine.add_request({prompts[i], params(100 + i), nullptr});
    run_to_completion(engine);
    alone.push_back(collect(*s).tokens);
  }
  FakeRunner runner(fake(5));
  Engine crowded(runner, engine_options(48, 16, true, 4 * kB));
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (size_t i = 0; i < prompts.size(); ++i) streams.push_back(crowded.add_request({prompts[i], params(100 + i), nullptr}));
  run_to_completion(crowded);
  EXPECT_GT(crowded.stats().num_preemptions, 0);
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(collect(*streams[i]).tokens, alone[i]) << "request " << i;
}

TEST(Engine, AnAbortedRequestFreesItsBlocksForTheSameStep) {
  FakeRunner runner(fake(4));
  Engine engine(runner, engine_options(1024, 8, false, 4 * kB));
  SamplingParams p;
  p.max_tokens = 50;
  auto big = engine.add_request({std::vector<int32_t>(3 * kB, 5), p, nullptr});
  engine.step();  // big holds 3 blocks (then 4 as it grows)
  engine.step();
  auto next = engine.add_request({std::vector<int32_t>(2 * kB, 6), p, nullptr});
  engine.step();
  EXPECT_EQ(engine.stats().num_waiting, 1);  // no room for `next`
  engine.abort(big->id());
  engine.step();  // the abort frees big's blocks before this step schedules: next runs now
  Collected b = collect(*big);
  EXPECT_TRUE(b.last.finished);
  EXPECT_EQ(b.last.finish_reason, FinishReason::kAbort);
  EXPECT_EQ(engine.stats().num_running, 1);
  EXPECT_EQ(collect(*next).tokens.size(), 1u);
  engine.abort(next->id());
  engine.abort(next->id());  // twice, and an unknown id: no-ops
  engine.abort(12345);
  engine.step();
  EXPECT_FALSE(engine.has_unfinished());
  EXPECT_EQ(engine.stats().num_free_blocks, 4);
  EXPECT_FALSE(big->next());  // the final event was taken
}

// A request aborted while its step is in flight ends when that step returns: no token from
// that step, a kAbort final event, and its blocks are free only then.
TEST(Engine, AnAbortInFlightEndsTheRequestWhenItsStepReturns) {
  FakeRunner fake_runner(fake(8));
  InFlightRunner runner(fake_runner, 2, 5);
  Engine engine(runner, engine_options(kB, 8, false, 4 * kB));  // one 64-token prompt per step
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = 5;
  const std::vector<int32_t> pa(kB, 3), pb(kB, 4);
  auto a = engine.add_request({pa, p, nullptr});
  auto b = engine.add_request({pb, p, nullptr});
  engine.step();  // a's and b's prompts in flight; a's step returns (a: 1 token, 2 blocks next)
  EXPECT_EQ(collect(*a).tokens.size(), 1u);
  EXPECT_EQ(engine.stats().num_free_blocks, 6);
  engine.abort(b->id());
  engine.step();  // b's step returns now: b ends, its block is freed
  Collected cb = collect(*b);
  EXPECT_TRUE(cb.tokens.empty());
  EXPECT_EQ(cb.last.finish_reason, FinishReason::kAbort);
  run_to_completion(engine);
  EXPECT_EQ(collect(*a).tokens.size(), 4u);
  EXPECT_EQ(engine.stats().num_free_blocks, 8);
}

// A step that fails when its logits are awaited fails its requests only; the other step in
// flight and later ones go on.
TEST(Engine, AStepFailingInFlightFailsOnlyItsRequests) {
  FakeRunner fake_runner(fake(16));
  InFlightRunner runner(fake_runner, 2, 6);
  Engine engine(runner, engine_options(kB, 8, true, 4 * kB));
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = 6;
  const std::vector<int32_t> pa(kB, 3), pb(kB, 4);
  bool failed = false;
  runner.fail_at_wait = [&](const ForwardBatch& batch) {
    if (failed || batch.token_ids.front() != 4) return false;
    return failed = true;  // b's prompt step
  };
  auto a = engine.add_request({pa, p, nullptr});
  auto b = engine.add_request({pb, p, nullptr});
  run_to_completion(engine);
  EXPECT_TRUE(failed);
  EXPECT_EQ(collect(*a).tokens, reference_greedy(pa, 6, kVocab));
  Collected cb = collect(*b);
  EXPECT_EQ(cb.last.finish_reason, FinishReason::kError);
  EXPECT_NE(cb.last.error.find("fell over"), std::string::npos);
  EXPECT_EQ(engine.stats().num_free_blocks, 16);
}

TEST(Engine, FinishReasonsEosStopTokensAndLength) {
  const std::vector<int32_t> prompt{1, 2, 3};
  const std::vector<int32_t> ref = reference_greedy(prompt, 10, kVocab);
  const int32_t eos = ref[3];
  const size_t first_eos = static_cast<size_t>(std::find(ref.begin(), ref.end(), eos) - ref.begin());
  FakeRunner runner(fake(16, {eos}));
  Engine engine(runner, engine_options(256, 8, true, 4 * kB));
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = 10;
  auto stops_at_eos = engine.add_request({prompt, p, nullptr});
  p.ignore_eos = true;
  auto ignores_eos = engine.add_request({prompt, p, nullptr});
  p.stop_token_ids = {ref[1]};
  auto stop_id = engine.add_request({prompt, p, nullptr});
  p.stop_token_ids = {};
  p.max_tokens = std::nullopt;  // up to max_model_len
  auto unlimited = engine.add_request({prompt, p, nullptr});
  run_to_completion(engine);

  Collected a = collect(*stops_at_eos);
  EXPECT_EQ(a.tokens, std::vector<int32_t>(ref.begin(), ref.begin() + static_cast<std::ptrdiff_t>(first_eos) + 1));
  EXPECT_EQ(a.last.finish_reason, FinishReason::kStop);
  EXPECT_EQ(a.last.stop_token_id, eos);
  Collected b = collect(*ignores_eos);
  EXPECT_EQ(b.tokens, ref);
  EXPECT_EQ(b.last.finish_reason, FinishReason::kLength);
  EXPECT_FALSE(b.last.stop_token_id);
  Collected c = collect(*stop_id);
  EXPECT_EQ(c.last.finish_reason, FinishReason::kStop);
  EXPECT_EQ(c.last.stop_token_id, ref[1]);
  EXPECT_EQ(c.tokens.back(), ref[1]);
  Collected d = collect(*unlimited);
  EXPECT_EQ(static_cast<int64_t>(d.tokens.size()) + 3, engine.max_model_len());
  EXPECT_EQ(d.last.finish_reason, FinishReason::kLength);
  EXPECT_STREQ(finish_reason_name(d.last.finish_reason), "length");
}

TEST(Engine, LogprobsComeWithEachToken) {
  FakeRunner runner(fake(16));
  Engine engine(runner, engine_options(256, 8, true, 4 * kB));
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = 4;
  p.logprobs = 3;
  const std::vector<int32_t> prompt{9, 8, 7};
  auto s = engine.add_request({prompt, p, nullptr});
  run_to_completion(engine);
  Collected c = collect(*s);
  ASSERT_EQ(c.events.size(), 4u);
  std::vector<int32_t> context = prompt;
  for (const RequestOutput& ev : c.events) {
    ASSERT_EQ(ev.logprobs.size(), 1u);
    const TokenLogprobs& lp = ev.logprobs[0];
    EXPECT_EQ(lp.sampled.token, ev.token_ids[0]);
    ASSERT_EQ(lp.top.size(), 3u);
    EXPECT_EQ(lp.top[0].token, ev.token_ids[0]);  // greedy: the best
    EXPECT_FLOAT_EQ(lp.top[0].logprob, lp.sampled.logprob);
    EXPECT_GE(lp.top[1].logprob, lp.top[2].logprob);
    std::vector<float> logits(kVocab);
    testing::fake_logits(context, logits);
    double z = 0;
    for (float x : logits) z += std::exp(double(x));
    EXPECT_NEAR(lp.sampled.logprob, logits[static_cast<size_t>(lp.sampled.token)] - std::log(z), 1e-5);
    context.push_back(ev.token_ids[0]);
  }
}

// Token i decodes to the letter 'a' + i % 26: a detokenizer for stop strings without a tokenizer.
class LetterDecoders final : public TextDecoderFactory {
  class Decoder final : public TextDecoder {
    std::string push(int32_t t) override { return std::string(1, static_cast<char>('a' + t % 26)); }
    std::string flush() override { return ""; }
  };

 public:
  std::unique_ptr<TextDecoder> make(bool) const override { return std::make_unique<Decoder>(); }
};

TEST(Engine, StopStringsEndTheRequestAndAreCutFromTheText) {
  const std::vector<int32_t> prompt{4, 5, 6};
  const std::vector<int32_t> ref = reference_greedy(prompt, 12, kVocab);
  std::string letters;
  for (int32_t t : ref) letters += static_cast<char>('a' + t % 26);
  const std::string stop = letters.substr(5, 2);
  const size_t at = letters.find(stop);
  FakeRunner runner(fake(16));
  LetterDecoders decoders;
  Engine engine(runner, engine_options(256, 8, true, 4 * kB), &decoders);
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = 12;
  p.stop = {stop};
  auto s = engine.add_request({prompt, p, nullptr});
  p.stop = {};
  auto plain = engine.add_request({prompt, p, nullptr});
  run_to_completion(engine);
  Collected c = collect(*s);
  EXPECT_EQ(c.last.finish_reason, FinishReason::kStop);
  EXPECT_EQ(c.last.stop_string, stop);
  EXPECT_EQ(c.text, letters.substr(0, at));
  EXPECT_EQ(c.tokens.size(), at + stop.size());
  EXPECT_EQ(collect(*plain).text, letters);
}

TEST(Engine, InvalidRequestsAreRefusedWithAMessage) {
  FakeRunner runner(fake(16));
  Engine engine(runner, engine_options(256, 8, true, 100));
  auto refused = [&](std::vector<int32_t> prompt, SamplingParams p) {
    try {
      engine.add_request({std::move(prompt), p, nullptr});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(refused({}, {}).find("empty"), std::string::npos);
  EXPECT_NE(refused({1, kVocab}, {}).find("vocabulary"), std::string::npos);
  EXPECT_NE(refused(std::vector<int32_t>(100, 1), {}).find("maximum context length"), std::string::npos);
  SamplingParams p;
  p.max_tokens = 50;
  EXPECT_NE(refused(std::vector<int32_t>(60, 1), p).find("max_tokens"), std::string::npos);
  p.max_tokens = INT64_MAX;  // prompt + max_tokens overflows
  EXPECT_NE(refused({1}, p).find("max_tokens"), std::string::npos);
  p = {};
  p.stop = {"x"};
  EXPECT_NE(refused({1}, p).find("tokenizer"), std::string::npos);
  p = {};
  p.temperature = -1.0f;
  EXPECT_NE(refused({1}, p).find("temperature"), std::string::npos);
  EXPECT_FALSE(engine.has_unfinished());
}

TEST(Engine, RejectsOptionsThatCannotServeALongestRequest) {
  FakeRunner runner(fake(4));
  EXPECT_THROW(Engine(runner, engine_options(256, 8, true, 5 * kB)), Error);  // the pool holds 4 blocks
  EXPECT_THROW(Engine(runner, EngineOptions{{100, 8, false}, true, 200, 20, 0}), Error);
  Engine fits(runner, EngineOptions{});  // max_model_len defaults to the cache's capacity
  EXPECT_EQ(fits.max_model_len(), 4 * kB);
}

TEST(Engine, AFailedStepFailsOnlyItsRequestsAndTheEngineGoesOn) {
  FakeRunner runner(fake(16));
  Engine engine(runner, engine_options(256, 8, true, 4 * kB));
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = 3;
  auto a = engine.add_request({{1, 2}, p, nullptr});
  runner.before_execute = [](const ForwardBatch&) { throw Error("device fell over"); };
  engine.step();
  runner.before_execute = nullptr;
  Collected ca = collect(*a);
  EXPECT_EQ(ca.last.finish_reason, FinishReason::kError);
  EXPECT_NE(ca.last.error.find("device fell over"), std::string::npos);
  auto b = engine.add_request({{1, 2}, p, nullptr});
  run_to_completion(engine);
  EXPECT_EQ(collect(*b).tokens, reference_greedy({1, 2}, 3, kVocab));
  EXPECT_EQ(engine.stats().num_free_blocks, 16);
}

// A runner whose steps return logits of the wrong shape when `misshapen` says so (a runner bug).
class MisshapenRunner final : public ModelRunner {
 public:
  explicit MisshapenRunner(ModelRunner& inner) : inner_(inner) {}
  ModelRunnerInfo info() const override { return inner_.info(); }
  Tensor execute(const ForwardBatch& batch) override {
    Tensor logits = inner_.execute(batch);
    if (!misshapen || !misshapen(batch)) return logits;
    return Tensor::zeros({logits.dim(0) + 1, logits.dim(1)}, DType::kF32);
  }
  std::function<bool(const ForwardBatch&)> misshapen;

 private:
  ModelRunner& inner_;
};

// Logits of the wrong shape fail their step's requests like a step that threw, in the
// background loop too (its handler once met those sequences still in flight and aborted the
// process); the engine goes on serving.
TEST(Engine, MisshapenLogitsFailOnlyTheirStep) {
  for (const bool background : {false, true}) {
    SCOPED_TRACE(background ? "background loop" : "step()");
    FakeRunner fake_runner(fake(16));
    MisshapenRunner runner(fake_runner);
    Engine engine(runner, engine_options(256, 8, true, 4 * kB));
    SamplingParams p;
    p.temperature = 0.0f;
    p.max_tokens = 4;
    runner.misshapen = [](const ForwardBatch& batch) { return batch.token_ids.front() == 7; };
    // Every event up to the final one (blocking: the background loop may still be at work).
    auto until_finished = [](RequestStream& stream) {
      Collected c;
      while (std::optional<RequestOutput> ev = stream.next()) {
        c.tokens.insert(c.tokens.end(), ev->token_ids.begin(), ev->token_ids.end());
        c.last = *ev;
        if (ev->finished) break;
      }
      return c;
    };
    if (background) engine.start();
    auto bad = engine.add_request({{7, 2}, p, nullptr});
    if (!background) run_to_completion(engine);
    const Collected cb = until_finished(*bad);
    EXPECT_EQ(cb.last.finish_reason, FinishReason::kError);
    EXPECT_NE(cb.last.error.find("returned logits [2, 101]"), std::string::npos) << cb.last.error;
    runner.misshapen = nullptr;
    auto good = engine.add_request({{1, 2}, p, nullptr});
    if (!background) run_to_completion(engine);
    EXPECT_EQ(until_finished(*good).tokens, reference_greedy({1, 2}, 4, kVocab));
    engine.stop();
    EXPECT_EQ(engine.stats().num_free_blocks, 16);
  }
}

TEST(Engine, OneTokenSequencesComeFirstInTheBatch) {
  FakeRunner runner(fake(64));
  Engine engine(runner, engine_options(40, 16, false, 4 * kB));
  int mixed = 0;
  runner.before_execute = [&](const ForwardBatch& b) {
    bool long_seen = false;
    for (const SequenceSlice& s : b.sequences) {
      if (s.query_len > 1) long_seen = true;
      EXPECT_FALSE(long_seen && s.query_len == 1) << "a decode sequence after a prompt chunk";
    }
    if (long_seen && b.sequences.front().query_len == 1) ++mixed;
  };
  SamplingParams p;
  p.max_tokens = 20;
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 12; ++i) {
    streams.push_back(engine.add_request({std::vector<int32_t>(static_cast<size_t>(5 + 9 * i), 3), p, nullptr}));
    engine.step();
  }
  run_to_completion(engine);
  EXPECT_GT(mixed, 0) << "no step mixed decode and prefill";
}

void serve_client_threads(int in_flight) {
  FakeRunner fake_runner(fake(12));
  InFlightRunner runner(fake_runner, in_flight, 8);
  Engine engine(runner, engine_options(64, 8, true, 4 * kB));
  engine.start();
  std::atomic<int> callbacks{0}, mismatches{0}, aborted{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937_64 rng(static_cast<uint64_t>(c));
      for (int i = 0; i < 6; ++i) {
        const std::vector<int32_t> prompt = prompt_of(rng, {}, 1 + static_cast<int64_t>(rng() % 100));
        SamplingParams p;
        p.temperature = 0.0f;
        p.max_tokens = 1 + static_cast<int64_t>(rng() % 30);
        const bool abort_it = i == 3;
        auto s = engine.add_request({prompt, p, [&] { ++callbacks; }});
        std::vector<int32_t> got;
        while (auto ev = s->next()) {
          got.insert(got.end(), ev->token_ids.begin(), ev->token_ids.end());
          if (abort_it && got.size() == 2) engine.abort(s->id());
          if (ev->finished && ev->finish_reason == FinishReason::kAbort) ++aborted;
        }
        const std::vector<int32_t> ref = reference_greedy(prompt, *p.max_tokens, kVocab);
        if (!std::equal(got.begin(), got.end(), ref.begin(), ref.begin() + static_cast<std::ptrdiff_t>(got.size())) ||
            (!abort_it && got.size() != ref.size())) {
          ++mismatches;
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  engine.stop();
  EXPECT_EQ(mismatches, 0);
  EXPECT_GT(callbacks, 24);
  EXPECT_LE(aborted, 4);
  EXPECT_FALSE(engine.has_unfinished());
  EXPECT_EQ(engine.stats().num_free_blocks, 12);
}

TEST(Engine, TheBackgroundLoopServesClientThreads) { serve_client_threads(1); }

TEST(Engine, TheBackgroundLoopServesClientThreadsWithStepsInFlight) { serve_client_threads(3); }

TEST(Engine, StopWaitsForTheStepsInFlightThenAbortsEveryRequest) {
  FakeRunner fake_runner(fake(16));
  InFlightRunner runner(fake_runner, 3, 4);
  Engine engine(runner, engine_options(kB, 8, true, 4 * kB));
  SamplingParams p;
  p.max_tokens = 50;
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int32_t i = 0; i < 4; ++i) streams.push_back(engine.add_request({std::vector<int32_t>(kB, i), p, nullptr}));
  engine.step();  // three prompt steps queued, the first returned
  EXPECT_EQ(runner.max_seen, 3);
  engine.stop();
  for (auto& s : streams) EXPECT_EQ(collect(*s).last.finish_reason, FinishReason::kAbort);
  EXPECT_EQ(engine.stats().num_free_blocks, 16);
}

TEST(Engine, StopEndsUnfinishedRequestsAsAborted) {
  FakeRunner runner(fake(16));
  Engine engine(runner, engine_options(256, 8, true, 4 * kB));
  SamplingParams p;
  p.max_tokens = 50;
  auto running = engine.add_request({{1, 2, 3}, p, nullptr});
  engine.step();
  auto queued = engine.add_request({{4, 5}, p, nullptr});
  engine.stop();
  EXPECT_EQ(collect(*running).last.finish_reason, FinishReason::kAbort);
  Collected q = collect(*queued);
  EXPECT_EQ(q.events.size(), 1u);
  EXPECT_EQ(q.last.finish_reason, FinishReason::kAbort);
  EXPECT_EQ(engine.stats().num_free_blocks, 16);
}

}  // namespace
}  // namespace mlaserve
