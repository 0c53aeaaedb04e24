// The tiny reference models on the GPU (BF16) against Hugging Face transformers' golden outputs
// and the CPU reference. Skips without a GPU.
//
// Tolerances. The GPU keeps activations in bf16 (8 significant bits: each rounding is within
// 2^-9 relative) with fp32 accumulation inside every op. About twenty roundings lie in series
// on a layer's path, so the logits drift ~1% from the fp32 reference as a random walk; we bound
// the relative L2 error at 3% and the absolute error of any logit at 0.25 (logits are ~1-10).
// The FP8 checkpoint runs with its weights dequantised to bf16: e4m3 x fp32 scale is not a bf16
// value, so every weight carries one more rounding (2^-9 relative) that the bf16 checkpoints'
// weights do not; its bound on any single logit is 0.4 (measured on an H100: up to 0.30 on the
// 300-token prompt, relative L2 1.7%; the bf16 models: up to 0.16, relative L2 1.2%).
// The 300-token prompt's logit rows avoid routing near-ties (tools/make_reference.py): at a
// near-tie bf16 may legitimately send a token to another expert, and its logits then move by
// O(1) (tiny-v3's token 185, router margin 3e-3, did under a decode kernel whose attention output
// stayed within 0.5% of the reference).
// Greedy tokens must equal the golden ones for as long as the reference's own top-1/top-2 gap
// (measured on the CPU model, which matches transformers to 1e-5) exceeds 0.5, twice that bound:
// past a closer call, bf16 may legitimately pick the other token, and a random model's
// continuation then diverges.
#include <gtest/gtest.h>

#include <cmath>

#include "core/memory.h"
#include "engine/generate.h"
#include "../tiny_models.h"

namespace mlaserve {
namespace {

using testing::GoldenPrompt;

DeepSeekModel load_gpu(const std::string& name, AttentionForm form) {
  const std::string dir = testing::tiny_model_dir(name);
  DeepSeekConfig config = load_deepseek_config(dir + "/config.json");
  ModelWeights weights = load_weights(Checkpoint::open(dir), config, LoadOptions{DType::kBF16, Fp8Mode::kDequantize, std::nullopt});
  move_weights(weights, Device::kCUDA);
  ModelOptions options;
  options.device = Device::kCUDA;
  options.attention_form = form;
  options.context_chunk_tokens = 64;
  return DeepSeekModel(std::move(config), std::move(weights), options);
}

// Top-1/top-2 gaps of the reference along the golden greedy path (teacher-forced on the CPU).
std::vector<float> reference_margins(DeepSeekModel& cpu, const GoldenPrompt& g) {
  std::vector<int32_t> all = g.prompt;
  all.insert(all.end(), g.greedy.begin(), g.greedy.end() - 1);
  GenerateOptions opt;
  opt.max_tokens = 0;
  for (size_t i = g.prompt.size() - 1; i < all.size(); ++i) opt.prompt_logit_rows.push_back(static_cast<int32_t>(i));
  GenerateResult r = generate(cpu, all, opt);
  const int64_t v = cpu.config().vocab_size;
  std::vector<float> margins;
  for (size_t s = 0; s < opt.prompt_logit_rows.size(); ++s) {
    std::vector<float> row(r.prompt_logits.data<float>() + s * v, r.prompt_logits.data<float>() + (s + 1) * v);
    std::partial_sort(row.begin(), row.begin() + 2, row.end(), std::greater<>());
    margins.push_back(row[0] - row[1]);
  }
  return margins;
}

struct Case {
  std::string model;
  AttentionForm form;
  int64_t prefill_chunk;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.model << "/form" << static_cast<int>(c.form) << "/chunk" << c.prefill_chunk; }

class GoldenCudaTest : public ::testing::TestWithParam<Case> {};

TEST_P(GoldenCudaTest, MatchesTransformersWithinBf16) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU visible: the BF16 GPU model is tested on the GPU machine (scripts/gpu_test.sh)";
  const Case& c = GetParam();
  DeepSeekModel gpu = load_gpu(c.model, c.form);
  DeepSeekModel cpu = testing::load_tiny_model(c.model);
  for (const GoldenPrompt& g : testing::load_golden(c.model)) {
    SCOPED_TRACE("prompt of " + std::to_string(g.prompt.size()) + " tokens");
    GenerateOptions opt;
    opt.max_tokens = static_cast<int64_t>(g.greedy.size());
    opt.sampling.temperature = 0.0f;
    opt.prefill_chunk = c.prefill_chunk;
    opt.block_shuffle_seed = 5;
    opt.prompt_logit_rows = g.logit_rows;
    GenerateResult r = generate(gpu, g.prompt, opt);

    const float* got = r.prompt_logits.data<float>();
    const float* want = g.logits.data<float>();
    double num = 0, den = 0, max_abs = 0;
    for (int64_t i = 0; i < g.logits.numel(); ++i) {
      ASSERT_TRUE(std::isfinite(got[i])) << "logit " << i;
      num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
      den += double(want[i]) * want[i];
      max_abs = std::max(max_abs, std::fabs(double(got[i]) - want[i]));
    }
    EXPECT_LT(std::sqrt(num / den), 0.03);
    EXPECT_LT(max_abs, c.model == "tiny-v3-fp8" ? 0.4 : 0.25);

    std::vector<float> margins = reference_margins(cpu, g);
    size_t checked = 0;
    while (checked < g.greedy.size() && margins[checked] > 0.5f) ++checked;
    EXPECT_EQ(std::vector<int32_t>(r.ids.begin(), r.ids.begin() + checked),
              std::vector<int32_t>(g.greedy.begin(), g.greedy.begin() + checked))
        << "greedy tokens compared: " << checked << " of " << g.greedy.size();
    std::printf("[ measured ] %s prompt %zu: logits rel L2 %.4f, max abs %.4f; greedy %zu/%zu checked, %zu equal overall\n",
                c.model.c_str(), g.prompt.size(), std::sqrt(num / den), max_abs, checked, g.greedy.size(),
                static_cast<size_t>(std::mismatch(r.ids.begin(), r.ids.end(), g.greedy.begin()).first - r.ids.begin()));
  }
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const std::string& m : testing::tiny_model_names()) {
    out.push_back({m, AttentionForm::kAuto, 0});
    out.push_back({m, AttentionForm::kAbsorbed, 0});
    out.push_back({m, AttentionForm::kMha, 0});
    out.push_back({m, AttentionForm::kAuto, 64});
  }
  return out;
}

std::string name(const ::testing::TestParamInfo<Case>& info) {
  std::string n = info.param.model + "_" +
                  (info.param.form == AttentionForm::kAuto ? "auto" : info.param.form == AttentionForm::kMha ? "mha" : "absorbed") +
                  "_chunk" + std::to_string(info.param.prefill_chunk);
  for (char& ch : n) if (ch == '-') ch = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(TinyModels, GoldenCudaTest, ::testing::ValuesIn(cases()), name);

// The whole GPU model once, small enough for compute-sanitizer (scripts/gpu_test.sh runs the
// *.Small* cases under memcheck and racecheck): tiny-v3, a 5-token prompt, a chunked prefill
// and decode steps, the same tokens as the CPU model.
TEST(GoldenCudaSmall, SmallTinyV3MatchesTheCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU visible: the BF16 GPU model is tested on the GPU machine (scripts/gpu_test.sh)";
  DeepSeekModel gpu = load_gpu("tiny-v3", AttentionForm::kAuto);
  DeepSeekModel cpu = testing::load_tiny_model("tiny-v3");
  GenerateOptions opt;
  opt.max_tokens = 4;
  opt.sampling.temperature = 0.0f;
  opt.prefill_chunk = 3;
  opt.block_shuffle_seed = 9;
  const std::vector<int32_t> prompt = testing::load_golden("tiny-v3")[1].prompt;
  // The first greedy token of this prompt has a reference margin of 0.28 (golden json), above
  // the 0.25 logit bound: it must agree; the rest are compared for the record only.
  EXPECT_EQ(generate(gpu, prompt, opt).ids.front(), generate(cpu, prompt, opt).ids.front());
}

}  // namespace
}  // namespace mlaserve
