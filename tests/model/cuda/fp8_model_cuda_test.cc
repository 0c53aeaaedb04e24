// The block-FP8 (W8A8) model on the GPU: tiny-v3-fp8's e4m3 weights kept with their scales,
// activations quantised per token and 128 channels before every FP8 GEMM (dense: fp8_quant +
// linear_fp8_w8a8; experts: the grouped FP8 GEMM). Skips without a GPU.
//
// Tolerances. The golden reference is transformers in fp32 on the dequantised weights, so it
// carries no activation quantisation. The CPU W8A8 emulation misses it by 5.6%, 7.4%, 21.6%
// relative L2 on the 1-, 5- and 300-token prompts (golden_test.cc: e4m3's 3 mantissa bits on
// every GEMM input, ten quantised GEMMs in series per layer); the GPU adds bf16 activations
// (~1%, golden_cuda_test.cc), which also move some quantised inputs by one e4m3 step. We bound the
// GPU at the CPU emulation's 30% against the golden logits and against the CPU W8A8 logits, and
// require the first greedy token to equal the golden one (its reference margins are >= 0.37).
// A wrong scale, block or expert gives errors of order 100%.
//
// Accuracy report (FP8 vs BF16 on the same weights): the same checkpoint once with its weights
// dequantised to bf16 and once W8A8, teacher-forced over every position of the golden prompts;
// prints the mean and largest KL(bf16 || fp8) of the next-token distributions and the top-1
// agreement. Measured on an H200 (two runs): KL mean 0.074-0.098 (max 2.4-3.4), top-1 81-82% over
// 306 positions; a random tiny model has many near-tied top candidates, so top-1 flips where the
// distributions barely differ. Bounds: KL mean < 0.2, top-1 > 60% (a broken path: KL of order the
// entropy, ~7, top-1 near 0). On the GPU the first greedy token of every prompt matched golden;
// the GPU W8A8 logits were 5.2-8.5% from golden (CPU W8A8: 5.6-21.6%), 6.8-22.5% from CPU W8A8
// (H200, golden rows of 2026-11-30).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/memory.h"
#include "engine/generate.h"
#include "model/dummy.h"
#include "model/presets.h"
#include "model/quantize_fp8.h"
#include "../same_weights.h"
#include "../step_batch.h"
#include "../tiny_models.h"

namespace mlaserve {
namespace {

using testing::GoldenPrompt;

constexpr const char* kModel = "tiny-v3-fp8";

DeepSeekModel load_gpu(Fp8Mode mode, int64_t context_chunk = 64) {
  const std::string dir = testing::tiny_model_dir(kModel);
  DeepSeekConfig config = load_deepseek_config(dir + "/config.json");
  LoadOptions load;
  load.weight_dtype = DType::kBF16;
  load.fp8_mode = mode;
  ModelWeights weights = load_weights(Checkpoint::open(dir), config, load);
  move_weights(weights, Device::kCUDA);
  ModelOptions options;
  options.device = Device::kCUDA;
  options.context_chunk_tokens = context_chunk;
  return DeepSeekModel(std::move(config), std::move(weights), options);
}

// The CPU's W8A8 emulation of the same checkpoint.
DeepSeekModel load_cpu_w8a8() {
  ModelOptions options;
  options.context_chunk_tokens = 64;
  LoadOptions load;
  load.fp8_mode = Fp8Mode::kW8A8;
  return testing::load_tiny_model(kModel, load, options);
}

double rel_l2(const Tensor& got, const Tensor& want) {
  const float* g = got.data<float>();
  const float* w = want.data<float>();
  double num = 0, den = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    EXPECT_TRUE(std::isfinite(g[i])) << "logit " << i;
    num += (double(g[i]) - w[i]) * (double(g[i]) - w[i]);
    den += double(w[i]) * w[i];
  }
  return std::sqrt(num / den);
}

GenerateResult run(DeepSeekModel& model, const std::vector<int32_t>& prompt, const std::vector<int32_t>& rows,
                   int64_t max_tokens, int64_t prefill_chunk = 0) {
  GenerateOptions opt;
  opt.max_tokens = max_tokens;
  opt.sampling.temperature = 0.0f;
  opt.prefill_chunk = prefill_chunk;
  opt.block_shuffle_seed = 5;
  opt.prompt_logit_rows = rows;
  return generate(model, prompt, opt);
}

bool gpu_missing() { return !cuda_available(); }

TEST(Fp8ModelCuda, TinyV3Fp8W8A8MatchesGoldenAndCpu) {
  if (gpu_missing()) GTEST_SKIP() << "no GPU visible";
  DeepSeekModel gpu = load_gpu(Fp8Mode::kW8A8);
  DeepSeekModel cpu = load_cpu_w8a8();
  for (const GoldenPrompt& g : testing::load_golden(kModel)) {
    SCOPED_TRACE("prompt of " + std::to_string(g.prompt.size()) + " tokens");
    const GenerateResult r = run(gpu, g.prompt, g.logit_rows, static_cast<int64_t>(g.greedy.size()));
    const GenerateResult c = run(cpu, g.prompt, g.logit_rows, 1);
    const double vs_golden = rel_l2(r.prompt_logits, g.logits);
    const double vs_cpu = rel_l2(r.prompt_logits, c.prompt_logits);
    const double cpu_vs_golden = rel_l2(c.prompt_logits, g.logits);
    EXPECT_LT(vs_golden, 0.30);
    EXPECT_LT(vs_cpu, 0.30);
    EXPECT_EQ(r.ids.front(), g.greedy.front());
    const size_t same = static_cast<size_t>(std::mismatch(r.ids.begin(), r.ids.end(), g.greedy.begin()).first - r.ids.begin());
    std::printf("[ measured ] %s W8A8 GPU, prompt %zu: logits rel L2 %.4f vs golden (CPU W8A8: %.4f), %.4f vs CPU "
                "W8A8; greedy %zu/%zu equal to golden\n",
                kModel, g.prompt.size(), vs_golden, cpu_vs_golden, vs_cpu, same, g.greedy.size());
  }
}

// Small enough for compute-sanitizer: a 5-token prompt in chunks of 3, then decode steps.
TEST(Fp8ModelCuda, SmallTinyV3Fp8ChunkedPrefillAndDecode) {
  if (gpu_missing()) GTEST_SKIP() << "no GPU visible";
  DeepSeekModel gpu = load_gpu(Fp8Mode::kW8A8);
  const GoldenPrompt g = testing::load_golden(kModel)[1];
  const GenerateResult r = run(gpu, g.prompt, {}, 4, /*prefill_chunk=*/3);
  ASSERT_EQ(r.ids.size(), 4u);
  EXPECT_EQ(r.ids.front(), g.greedy.front());
}

// log_softmax of one row, in double.
std::vector<double> log_probs(const float* logits, int64_t v) {
  const double mx = *std::max_element(logits, logits + v);
  double sum = 0;
  for (int64_t i = 0; i < v; ++i) sum += std::exp(double(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  std::vector<double> out(static_cast<size_t>(v));
  for (int64_t i = 0; i < v; ++i) out[i] = double(logits[i]) - lse;
  return out;
}

// How close the next-token distributions of two models are over the same positions: KL(a || b)
// per position (mean and max) and how often their argmaxes agree.
class AgreementReport {
 public:
  // a, b [S, V] f32 on the host: the logits of the two models at the same S positions.
  void add(const Tensor& a, const Tensor& b) {
    const int64_t v = a.dim(1);
    for (int64_t s = 0; s < a.dim(0); ++s) {
      const float* pa = a.data<float>() + s * v;
      const float* pb = b.data<float>() + s * v;
      const std::vector<double> la = log_probs(pa, v), lb = log_probs(pb, v);
      double kl = 0;
      for (int64_t i = 0; i < v; ++i) kl += std::exp(la[i]) * (la[i] - lb[i]);
      kl_sum_ += kl;
      kl_max_ = std::max(kl_max_, kl);
      agree_ += (std::max_element(pa, pa + v) - pa) == (std::max_element(pb, pb + v) - pb) ? 1 : 0;
      ++rows_;
    }
  }
  double kl_mean() const { return kl_sum_ / static_cast<double>(rows_); }
  double top1() const { return static_cast<double>(agree_) / static_cast<double>(rows_); }
  // Prints the figures after `what` and records them as the test's properties.
  void print(const std::string& what) const {
    std::printf("[ measured ] %s, %lld positions: KL mean %.5f, max %.5f; top-1 agreement %.4f\n", what.c_str(),
                static_cast<long long>(rows_), kl_mean(), kl_max_, top1());
    ::testing::Test::RecordProperty("kl_mean", std::to_string(kl_mean()));
    ::testing::Test::RecordProperty("top1_agreement", std::to_string(top1()));
  }

 private:
  double kl_sum_ = 0, kl_max_ = 0;
  int64_t rows_ = 0, agree_ = 0;
};

TEST(Fp8ModelCuda, AccuracyReportFp8VsBf16) {
  if (gpu_missing()) GTEST_SKIP() << "no GPU visible";
  DeepSeekModel bf16 = load_gpu(Fp8Mode::kDequantize);
  DeepSeekModel fp8 = load_gpu(Fp8Mode::kW8A8);
  AgreementReport report;
  for (const GoldenPrompt& g : testing::load_golden(kModel)) {
    std::vector<int32_t> all_rows(g.prompt.size());
    std::iota(all_rows.begin(), all_rows.end(), 0);
    const Tensor a = run(bf16, g.prompt, all_rows, 1).prompt_logits;  // [S, V]
    const Tensor b = run(fp8, g.prompt, all_rows, 1).prompt_logits;
    report.add(a, b);
  }
  report.print(std::string(kModel) + " FP8 (W8A8) vs BF16 (dequantised weights), GPU");
  EXPECT_LT(report.kl_mean(), 0.2);
  EXPECT_GT(report.top1(), 0.6);
}

// The same report at V2-Lite's real widths (H 2048, 16 heads, 64 experts of Im 1408, vocab
// 102400), four layers (one dense, three MoE) of dummy weights: BF16 filled on the GPU, and the
// same weights quantised to block FP8 on the GPU (`--quantization fp8`), teacher-forced over two
// random 128-token prompts. Measured on an H200 (two runs): KL mean 0.0046 (max 0.0067), top-1
// 79.7-80.1%: the
// dummy's next-token distributions are nearly flat (random weights), so the top-1 changes on tiny
// logit moves while the distributions agree closely. Bounds: KL mean < 0.02, top-1 > 60% (a broken
// FP8 path gives KL of order the entropy, ~11, and top-1 near 0).
TEST(Fp8ModelCuda, AccuracyReportV2LiteDummyFp8VsBf16) {
  if (gpu_missing()) GTEST_SKIP() << "no GPU visible";
  DeepSeekConfig config = preset_config("deepseek-v2-lite");
  config.num_hidden_layers = 4;
  config.layer_is_moe.resize(4);
  ModelOptions options;
  options.device = Device::kCUDA;
  DummyOptions d;
  d.seed = 11;
  d.weight_dtype = DType::kBF16;
  d.device = Device::kCUDA;
  DeepSeekModel bf16(config, make_dummy_weights(config, d), options);
  d.fp8 = true;
  DeepSeekModel fp8(config, make_dummy_weights(config, d), options);
  const int64_t v = config.vocab_size;
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(v) - 1);
  AgreementReport report;
  for (int p = 0; p < 2; ++p) {
    std::vector<int32_t> prompt(128);
    for (int32_t& t : prompt) t = token(rng);
    std::vector<int32_t> all_rows(prompt.size());
    std::iota(all_rows.begin(), all_rows.end(), 0);
    const Tensor a = run(bf16, prompt, all_rows, 1).prompt_logits;  // [S, V]
    const Tensor b = run(fp8, prompt, all_rows, 1).prompt_logits;
    report.add(a, b);
  }
  report.print("V2-Lite-shaped dummy (4 layers) FP8 (quantised at load) vs BF16, GPU");
  EXPECT_LT(report.kl_mean(), 0.02);
  EXPECT_GT(report.top1(), 0.6);
}

// A released preset cut to its first 4 layers.
DeepSeekConfig four_layers(const std::string& preset) {
  DeepSeekConfig config = preset_config(preset);
  config.num_hidden_layers = 4;
  finalize_config(config);
  return config;
}

// Dummy weights filled in bf16 on the GPU from `seed`.
DummyOptions gpu_bf16_dummies(uint64_t seed) {
  DummyOptions d;
  d.seed = seed;
  d.weight_dtype = DType::kBF16;
  d.device = Device::kCUDA;
  return d;
}

// FP8 dummies on the GPU are made layer by layer (each layer quantised as soon as it is drawn, so
// one layer at a time is held in bf16): every tensor, bit for bit, is the whole bf16 dummy model's
// quantised after it is made (quantize_weights_fp8), at V2-Lite's shapes (4 layers: one dense,
// three MoE).
TEST(Fp8ModelCuda, DummyFp8WeightsAreTheBf16DummiesQuantised) {
  if (gpu_missing()) GTEST_SKIP() << "no GPU visible";
  const DeepSeekConfig config = four_layers("deepseek-v2-lite");
  DummyOptions d = gpu_bf16_dummies(17);
  ModelWeights whole = make_dummy_weights(config, d);
  quantize_weights_fp8(whole);
  d.fp8 = true;
  ModelWeights by_layer = make_dummy_weights(config, d);
  testing::expect_same_weights(whole, by_layer);
}

// `--quantization fp8` on a bf16 checkpoint (move_and_quantize_fp8): each layer moved to the GPU and
// quantised there before the next one moves gives, bit for bit, the whole model moved and then
// quantised (tiny-v2-lite).
TEST(Fp8ModelCuda, LoadTimeQuantisationLayerByLayerEqualsTheWholeModel) {
  if (gpu_missing()) GTEST_SKIP() << "no GPU visible";
  const std::string dir = testing::tiny_model_dir("tiny-v2-lite");
  const DeepSeekConfig config = load_deepseek_config(dir + "/config.json");
  const LoadOptions bf16{DType::kBF16, Fp8Mode::kDequantize, std::nullopt};
  ModelWeights whole = load_weights(Checkpoint::open(dir), config, bf16);
  ModelWeights by_layer = load_weights(Checkpoint::open(dir), config, bf16);
  move_weights(whole, Device::kCUDA);
  quantize_weights_fp8(whole);
  move_and_quantize_fp8(by_layer, Device::kCUDA);
  for (const Tensor& t : testing::weight_tensors(by_layer)) ASSERT_EQ(t.device(), Device::kCUDA);
  testing::expect_same_weights(whole, by_layer);
}

// The norms' FP8 quantisation (ModelOptions::quantize_in_norms, model.h) against each FP8 linear
// quantising its own input, at V2-Lite's shapes (quantised to FP8 at load; 4 layers: one dense,
// three MoE; q_proj) and V3's (its FP8 config; 4 layers: three dense, one MoE; q_a_proj,
// q_a_layernorm, q_b_proj), dummy weights: the logits of every step equal bit for bit.
//   - V2-Lite's one-token steps (decode T = 1) run the same ops either way: the norms do not
//     quantise there (ops::fp8_norm_quantization_pays, rms_norm_fp8.h). From two tokens (T = 3)
//     they do, and V3's rows (7168 wide) at every step: the bf16 path's GEMVs take the same
//     tensor-core GEMV, quantising inside (V2-Lite T = 3, V3 T = 1) or after a quantiser pass.
//   - Larger steps (decode T = 16, 64; prefills of 340, 39, 152 and 190 rows) run the same
//     kernels on the same bits: the norms' codes and scales are the quantiser's
//     (ops/rms_norm_fp8.h), kAuto picks for quantised x the kernel the bf16 path runs after its
//     quantiser (linear_fp8_heuristics.h: the choices differ only at <= 8 tokens), cuBLASLt reads
//     the same scale values group-major, all rows in one call either way, and the routed experts
//     gather the same codes.
// The attention output o_proj reads is quantised where o is written in steps with MHA-form rows
// (AttentionFp8Output: the prefill attention's epilogue, or the last LSE merge of a chunk after
// cached context; the absorbed rows of the step by a quantiser pass): the same codes as o_proj's
// own pass over o. The last case prefills two prompts in two chunks each (context up-projected in
// chunks of 64 tokens, so the second chunks merge twice and once) beside a decoding sequence.
// The prefills: 3 prompts of 300, 39 and 1 tokens (340 rows, a multiple of 4: cuBLASLt with the
// norms' group-major scales), 39 tokens (the swap-AB kernel), 16 sequences of 2..17 tokens (152
// rows: cuBLASLt) and 64 of 1..5 (190 rows, not a multiple of 4: the one-group grouped GEMM where
// N and K are multiples of 128, else swap-AB); each then takes 2 decode steps of tokens fixed up
// front. Before the gate a T = 1 step took the tensor-core GEMV on the norm's codes where bf16 x
// took the CUDA-core GEMV quantising inside: another summation order, so bf16 roundings and then
// e4m3 codes flipped, and V3's dummy logits moved 6.3% and 14% relative L2 (H200,
// gpu-bin-lead/s17/run05.sh).
class Fp8NormQuantCuda : public ::testing::TestWithParam<std::string> {};

TEST_P(Fp8NormQuantCuda, SameLogitsAsQuantisingInEachLinear) {
  if (gpu_missing()) GTEST_SKIP() << "no GPU visible";
  const DeepSeekConfig config = four_layers(GetParam());
  DummyOptions d = gpu_bf16_dummies(7);
  d.fp8 = true;  // V2-Lite: quantised at load; V3: its own FP8 config
  const ModelWeights weights = make_dummy_weights(config, d);
  std::mt19937 rng(13);
  auto tokens = [&](size_t n) {
    std::vector<int32_t> ids(n);
    for (int32_t& t : ids) t = static_cast<int32_t>(rng() % config.vocab_size);
    return ids;
  };
  struct Case {
    std::string name;
    std::vector<std::vector<int32_t>> prompts;
    std::vector<std::vector<int32_t>> decode;  // decode[k][s]: step k's token of sequence s
    int32_t blocks_per_seq;
  };
  auto make_case = [&](std::string name, const std::vector<size_t>& lengths, int32_t blocks_per_seq) {
    Case c{std::move(name), {}, {}, blocks_per_seq};
    for (size_t len : lengths) c.prompts.push_back(tokens(len));
    for (int k = 0; k < 2; ++k) c.decode.push_back(tokens(lengths.size()));
    return c;
  };
  std::vector<size_t> sixteen, sixty_four;
  for (size_t s = 0; s < 16; ++s) sixteen.push_back(2 + s);
  for (size_t s = 0; s < 64; ++s) sixty_four.push_back(1 + s % 5);
  const std::vector<Case> cases = {make_case("3 sequences (T = 3)", {300, 39, 1}, 8),
                                   make_case("1 sequence (T = 1)", {39}, 1),
                                   make_case("16 sequences (T = 16)", sixteen, 1),
                                   make_case("64 sequences (T = 64)", sixty_four, 1)};
  // Chunked: prompts of 200 and 90 tokens prefilled as 120 + 80 and 50 + 40, a third sequence of
  // 3 tokens then decoding one beside the second chunks.
  const std::vector<std::vector<int32_t>> chunked = {tokens(200), tokens(90), tokens(4)};
  auto run_chunked = [&](DeepSeekModel& model) {
    constexpr int32_t kBlocks = 4;
    LatentCache cache = model.make_cache(3 * kBlocks);
    const std::vector<std::vector<int32_t>> first = {{chunked[0].begin(), chunked[0].begin() + 120},
                                                     {chunked[1].begin(), chunked[1].begin() + 50},
                                                     {chunked[2].begin(), chunked[2].begin() + 3}};
    std::vector<Tensor> out;
    out.push_back(model.forward(testing::step_batch(first, {0, 0, 0}, kBlocks), cache).to(Device::kCPU));
    out.push_back(model.forward(testing::step_batch(chunked, {120, 50, 3}, kBlocks), cache).to(Device::kCPU));
    return out;
  };
  std::vector<std::vector<Tensor>> logits[2];  // [in_norms][case][step]
  for (bool in_norms : {true, false}) {
    ModelOptions options;
    options.device = Device::kCUDA;
    options.quantize_in_norms = in_norms;
    options.context_chunk_tokens = 64;
    DeepSeekModel model(config, weights, options);
    for (const Case& c : cases) {
      logits[in_norms].push_back(testing::run_fixed_steps(model, c.prompts, c.decode, c.blocks_per_seq));
    }
    logits[in_norms].push_back(run_chunked(model));
  }
  for (size_t i = 0; i < logits[0].size(); ++i) {
    for (size_t k = 0; k < logits[0][i].size(); ++k) {
      const Tensor& a = logits[1][i][k];
      const Tensor& b = logits[0][i][k];
      ASSERT_EQ(a.shape(), b.shape());
      if (std::memcmp(a.raw(), b.raw(), a.nbytes()) != 0) {
        ADD_FAILURE() << (i < cases.size() ? cases[i].name : "chunked prefill") << ", step " << k
                      << " (0: the prefill): logits differ, rel L2 "
                      << rel_l2(a, b);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Released, Fp8NormQuantCuda, ::testing::Values("deepseek-v2-lite", "deepseek-v3"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

}  // namespace
}  // namespace mlaserve
