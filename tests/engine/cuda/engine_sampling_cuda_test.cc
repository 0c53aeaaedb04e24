// GPU sampling in the engine (engine/sampler.h): with logits on the GPU, rows without penalties
// draw their token with ops::sample on the GPU; rows with penalties, and the logprobs, stay on
// the host. Tested against the host sampler on the same logits:
//   - sample_tokens_gpu gives sample_token's token for every row without penalties (mixed with
//     greedy and penalised rows, which get -1) at DeepSeek-V3's vocabulary;
//   - the engine over the fake runner, its logits moved to the GPU, streams the same tokens and
//     logprobs as over the host fake runner, for concurrent requests mixing every sampling
//     option, logprobs and penalties.
// The GPU picks the host's token except within ~1e-12 of a cumulative-mass boundary
// (ops/cuda/sampling_cuda.h); over the few thousand draws here the chance of meeting one is
// below 1e-8, so tokens must be equal. Skips without a GPU (CI compiles it).
#include <gtest/gtest.h>

#include <random>

#include "../fake_runner.h"
#include "core/memory.h"
#include "engine/engine.h"
#include "engine/sampler.h"

namespace mlaserve {
namespace {

using testing::FakeRunner;
using testing::FakeRunnerOptions;

constexpr int64_t kVocab = 129280;  // DeepSeek-V3

bool have_gpu() { return cuda_available(); }  // scripts/gpu_test.sh runs this on the GPU machine

// The fake runner with its logits moved to the GPU.
class GpuLogitsRunner final : public ModelRunner {
 public:
  explicit GpuLogitsRunner(FakeRunnerOptions options) : inner_(std::move(options)) {}
  ModelRunnerInfo info() const override { return inner_.info(); }
  Tensor execute(const ForwardBatch& batch) override { return inner_.execute(batch).to(Device::kCUDA); }

 private:
  FakeRunner inner_;
};

// Sampling options for request i: every filter alone and together, greedy, logprobs, penalties,
// logit_bias.
SamplingParams params_for(int i) {
  SamplingParams p;
  p.max_tokens = 12;
  p.ignore_eos = true;
  p.seed = 1000 + static_cast<uint64_t>(i);
  switch (i % 9) {
    case 0: p.temperature = 1.0f; break;
    case 1: p.temperature = 0.7f, p.top_k = 50; break;
    case 2: p.top_p = 0.9f; break;
    case 3: p.temperature = 1.2f, p.min_p = 0.3f; break;
    case 4: p.temperature = 0.8f, p.top_k = 1000, p.top_p = 0.95f, p.min_p = 0.05f, p.logprobs = 3; break;
    case 5: p.temperature = 0.0f; break;
    case 6: p.temperature = 0.0f, p.logprobs = 2; break;
    case 7: p.top_k = 20, p.repetition_penalty = 1.3f, p.frequency_penalty = 0.5f; break;  // host path
    case 8: p.temperature = 0.9f, p.logit_bias = {{7, 5.0f}, {11, -100.0f}}; break;             // host path
  }
  return p;
}

TEST(SamplerCuda, GpuTokensMatchTheHostSampler) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU visible";
  constexpr int64_t kRows = 48;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal(0.0f, 2.5f);
  Tensor logits = Tensor::empty({kRows, kVocab}, DType::kF32);
  for (int64_t i = 0; i < kRows * kVocab; ++i) logits.data<float>()[i] = normal(rng);
  const std::vector<int32_t> prompt = {1, 2, 3}, output = {4, 5};
  std::vector<SamplingParams> params;
  std::vector<SamplerRow> rows;
  for (int64_t i = 0; i < kRows; ++i) params.push_back(params_for(static_cast<int>(i)));
  for (int64_t i = 0; i < kRows; ++i) rows.push_back({&params[i], prompt, output, static_cast<uint64_t>(77 + i)});

  const std::vector<int32_t> gpu = sample_tokens_gpu(logits.to(Device::kCUDA), rows);
  ASSERT_EQ(gpu.size(), static_cast<size_t>(kRows));
  for (int64_t i = 0; i < kRows; ++i) {
    Tensor row = logits.slice(i, i + 1).to(Device::kCPU);
    Tensor copy = Tensor::empty(row.shape(), DType::kF32);
    std::copy_n(row.data<float>(), kVocab, copy.data<float>());
    const int32_t want = sample_tokens(copy, {&rows[i], 1}).front().token;
    if (samples_on_gpu(params[i])) {
      EXPECT_EQ(gpu[i], want) << "row " << i;
    } else {
      EXPECT_EQ(gpu[i], -1) << "row " << i << " has penalties: the host samples it";
    }
  }
  // No row on the GPU: no launch, an empty answer.
  std::vector<SamplerRow> penalised(rows.begin() + 7, rows.begin() + 8);
  EXPECT_TRUE(sample_tokens_gpu(logits.slice(7, 8).to(Device::kCUDA), penalised).empty());
}

struct EngineRun {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<TokenLogprobs>> logprobs;
};

EngineRun run_engine(ModelRunner& runner) {
  EngineOptions o;
  o.scheduler = {256, 16, true};
  o.max_model_len = 64;
  Engine engine(runner, o);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 24; ++i) {
    streams.push_back(engine.add_request(GenerationRequest{{3, 1, 4, 1, 5, static_cast<int32_t>(i)}, params_for(i), nullptr}));
  }
  for (int i = 0; engine.has_unfinished(); ++i) {
    if (i > 10000) throw std::runtime_error("the engine does not finish");
    engine.step();
  }
  EngineRun run;
  for (auto& s : streams) {
    run.tokens.emplace_back();
    run.logprobs.emplace_back();
    while (auto ev = s->try_next()) {
      EXPECT_TRUE(ev->error.empty()) << ev->error;
      run.tokens.back().insert(run.tokens.back().end(), ev->token_ids.begin(), ev->token_ids.end());
      run.logprobs.back().insert(run.logprobs.back().end(), ev->logprobs.begin(), ev->logprobs.end());
    }
  }
  return run;
}

TEST(EngineSamplingCuda, GpuLogitsStreamTheHostSamplersTokens) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU visible";
  const FakeRunnerOptions fake{kVocab, 64, 1 << 20, {}};
  FakeRunner host_runner(fake);
  GpuLogitsRunner gpu_runner(fake);
  const EngineRun want = run_engine(host_runner), got = run_engine(gpu_runner);
  ASSERT_EQ(got.tokens.size(), want.tokens.size());
  for (size_t i = 0; i < want.tokens.size(); ++i) {
    EXPECT_EQ(want.tokens[i].size(), 12u) << "request " << i;
    EXPECT_EQ(got.tokens[i], want.tokens[i]) << "request " << i;
    ASSERT_EQ(got.logprobs[i].size(), want.logprobs[i].size()) << "request " << i;
    for (size_t t = 0; t < want.logprobs[i].size(); ++t) {
      EXPECT_EQ(got.logprobs[i][t].sampled.token, want.logprobs[i][t].sampled.token);
      EXPECT_EQ(got.logprobs[i][t].sampled.logprob, want.logprobs[i][t].sampled.logprob);
      ASSERT_EQ(got.logprobs[i][t].top.size(), want.logprobs[i][t].top.size());
      for (size_t k = 0; k < want.logprobs[i][t].top.size(); ++k) {
        EXPECT_EQ(got.logprobs[i][t].top[k].token, want.logprobs[i][t].top[k].token);
      }
    }
  }
}

}  // namespace
}  // namespace mlaserve
