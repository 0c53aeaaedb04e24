// KvCacheLayout::kMha on the GPU (BF16): the tiny models give the latent layout's greedy tokens
// and logits within bf16 tolerance, through chunked prefill (cached context gathered from the
// paged MHA cache) and decode (paged_mha_decode). Skips without a GPU.
//
// Tolerances. Each layout's GPU logits are within 0.25 of the fp32 reference (golden_cuda_test.cc
// explains the bound: ~20 bf16 roundings in series per layer); the two layouts round at
// different places (the MHA layout stores K/V rounded to bf16, the latent one the latent row),
// so they are within 0.5 of each other. Greedy tokens must agree for as long as the fp32
// reference's top-1/top-2 margin exceeds 1.0 (twice 0.5); past a closer call either may
// legitimately pick the other token.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/memory.h"
#include "engine/generate.h"
#include "../tiny_models.h"

namespace mlaserve {
namespace {

DeepSeekModel load_gpu(const std::string& name, KvCacheLayout layout) {
  const std::string dir = testing::tiny_model_dir(name);
  DeepSeekConfig config = load_deepseek_config(dir + "/config.json");
  LoadOptions load;
  load.weight_dtype = DType::kBF16;
  ModelWeights weights = load_weights(Checkpoint::open(dir), config, load);
  move_weights(weights, Device::kCUDA);
  ModelOptions options;
  options.device = Device::kCUDA;
  options.kv_cache_layout = layout;
  options.context_chunk_tokens = 64;
  return DeepSeekModel(std::move(config), std::move(weights), options);
}

// How many leading greedy tokens the fp32 CPU reference chose with a top-1/top-2 margin > 1.0.
size_t confident_prefix(DeepSeekModel& cpu, const std::vector<int32_t>& prompt, const std::vector<int32_t>& greedy) {
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), greedy.begin(), greedy.end() - 1);
  GenerateOptions opt;
  opt.max_tokens = 0;
  for (size_t i = prompt.size() - 1; i < all.size(); ++i) opt.prompt_logit_rows.push_back(static_cast<int32_t>(i));
  const GenerateResult r = generate(cpu, all, opt);
  const int64_t v = cpu.config().vocab_size;
  for (size_t s = 0; s < opt.prompt_logit_rows.size(); ++s) {
    std::vector<float> row(r.prompt_logits.data<float>() + s * v, r.prompt_logits.data<float>() + (s + 1) * v);
    std::partial_sort(row.begin(), row.begin() + 2, row.end(), std::greater<>());
    if (row[0] - row[1] <= 1.0f) return s;
  }
  return opt.prompt_logit_rows.size();
}

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

class MhaCacheCuda : public ::testing::TestWithParam<std::string> {};

TEST_P(MhaCacheCuda, MatchesTheLatentLayoutWithinBf16) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU visible: the BF16 GPU model is tested on the GPU machine";
  DeepSeekModel latent = load_gpu(GetParam(), KvCacheLayout::kLatent);
  DeepSeekModel mha = load_gpu(GetParam(), KvCacheLayout::kMha);
  DeepSeekModel cpu = testing::load_tiny_model(GetParam());
  for (const testing::GoldenPrompt& g : testing::load_golden(GetParam())) {
    for (int64_t chunk : {int64_t{0}, int64_t{64}}) {
      SCOPED_TRACE("prompt of " + std::to_string(g.prompt.size()) + " tokens, prefill chunk " + std::to_string(chunk));
      GenerateOptions opt;
      opt.max_tokens = static_cast<int64_t>(g.greedy.size());
      opt.sampling.temperature = 0.0f;
      opt.prefill_chunk = chunk;
      opt.block_shuffle_seed = 7;
      opt.prompt_logit_rows = g.logit_rows;
      const GenerateResult want = generate(latent, g.prompt, opt);
      const GenerateResult got = generate(mha, g.prompt, opt);
      EXPECT_LT(max_abs_diff(got.prompt_logits, want.prompt_logits), 0.5);
      const size_t sure = confident_prefix(cpu, g.prompt, g.greedy);
      for (size_t i = 0; i < sure && i < got.ids.size() && i < want.ids.size(); ++i) {
        EXPECT_EQ(got.ids[i], want.ids[i]) << "greedy token " << i;
        if (got.ids[i] != want.ids[i]) break;
      }
      for (size_t i = 0; i < got.step_logits.size() && i < want.step_logits.size() && i < sure; ++i) {
        EXPECT_LT(max_abs_diff(got.step_logits[i].to(Device::kCPU), want.step_logits[i].to(Device::kCPU)), 0.5)
            << "decode step " << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(TinyModels, MhaCacheCuda, ::testing::Values("tiny-v2-lite", "tiny-v3"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

// Small enough for compute-sanitizer: tiny-v3, a 5-token prompt in chunks of 3, decode steps.
TEST(MhaCacheCudaSmall, SmallTinyV3MatchesTheLatentLayout) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU visible: the BF16 GPU model is tested on the GPU machine";
  DeepSeekModel latent = load_gpu("tiny-v3", KvCacheLayout::kLatent);
  DeepSeekModel mha = load_gpu("tiny-v3", KvCacheLayout::kMha);
  GenerateOptions opt;
  opt.max_tokens = 4;
  opt.sampling.temperature = 0.0f;
  opt.prefill_chunk = 3;
  opt.block_shuffle_seed = 9;
  opt.prompt_logit_rows = {4};
  const std::vector<int32_t> prompt = testing::load_golden("tiny-v3")[1].prompt;
  const GenerateResult want = generate(latent, prompt, opt), got = generate(mha, prompt, opt);
  EXPECT_LT(max_abs_diff(got.prompt_logits, want.prompt_logits), 0.5);
  EXPECT_EQ(got.ids.front(), want.ids.front());
}

}  // namespace
}  // namespace mlaserve
