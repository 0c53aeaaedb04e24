// The side stream (model.h, ModelOptions::side_stream): every GPU step runs two chains of each
// layer side by side on a second stream (the latent row beside the query projection, the shared
// experts beside the router and the routed experts). That may change the timing, never the
// arithmetic: the logits must equal, bit for bit, those of the same model with every op on one
// stream, and those of a second run with the side stream. A race between the streams (a buffer
// reused across them, a join too early) shows up as a difference; so does a path that computes
// differently when forked. Dummy weights at released shapes cut to 4 layers, BF16 and block FP8;
// a prefill of 3 prompts (1,238 tokens: the prefill-sized kernels, the MHA form) and 3 decode
// steps. Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/memory.h"
#include "model/dummy.h"
#include "model/model.h"
#include "model/presets.h"
#include "../step_batch.h"

namespace mlaserve {
namespace {

// The logits [R, V] of every step (host), feeding each step's argmax back as the next token.
std::vector<Tensor> run_steps(DeepSeekModel& model, std::vector<std::vector<int32_t>> seqs, int decode_steps) {
  constexpr int32_t kBlocksPerSeq = 24;  // 1,536 tokens
  LatentCache cache = model.make_cache(static_cast<int64_t>(seqs.size()) * kBlocksPerSeq);
  std::vector<int32_t> done(seqs.size(), 0);
  std::vector<Tensor> logits;
  for (int k = 0; k <= decode_steps; ++k) {
    const ForwardBatch batch = testing::step_batch(seqs, done, kBlocksPerSeq);
    logits.push_back(model.forward(batch, cache).to(Device::kCPU));
    const Tensor& l = logits.back();
    for (size_t s = 0; s < seqs.size(); ++s) {
      done[s] = static_cast<int32_t>(seqs[s].size());
      const float* row = l.data<float>() + static_cast<int64_t>(s) * l.dim(1);
      seqs[s].push_back(static_cast<int32_t>(std::max_element(row, row + l.dim(1)) - row));
    }
  }
  return logits;
}

std::vector<Tensor> run_model(const DeepSeekConfig& config, bool side_stream,
                              const std::vector<std::vector<int32_t>>& prompts) {
  DummyOptions d;
  d.seed = 5;
  d.weight_dtype = DType::kBF16;  // block FP8 when config.fp8 (quantised on the GPU)
  d.device = Device::kCUDA;
  ModelOptions options;
  options.device = Device::kCUDA;
  options.side_stream = side_stream;
  DeepSeekModel model(config, make_dummy_weights(config, d), options);
  return run_steps(model, prompts, 3);
}

// How many values of a and b differ in their bits.
int64_t differing_bits(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  int64_t n = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    n += std::memcmp(a.data<float>() + i, b.data<float>() + i, sizeof(float)) != 0;
  }
  return n;
}

void expect_same_bits(const std::vector<Tensor>& a, const std::vector<Tensor>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) {
    EXPECT_EQ(differing_bits(a[k], b[k]), 0) << what << ", step " << k << " (0: the prefill)";
  }
}

DeepSeekConfig four_layers(const std::string& preset, bool fp8) {
  DeepSeekConfig c = preset_config(preset);
  c.num_hidden_layers = 4;
  if (!fp8) c.fp8.reset();
  finalize_config(c);
  return c;
}

class SideStreamCuda : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(SideStreamCuda, SameBitsAsOneStream) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU visible: the side stream is tested on the GPU machine";
  const auto& [preset, fp8] = GetParam();
  const DeepSeekConfig config = four_layers(preset, fp8);
  std::vector<std::vector<int32_t>> prompts;
  std::mt19937 rng(9);
  for (int len : {1200, 37, 1}) {
    std::vector<int32_t> p(static_cast<size_t>(len));
    for (int32_t& t : p) t = static_cast<int32_t>(rng() % config.vocab_size);
    prompts.push_back(p);
  }
  const std::vector<Tensor> forked = run_model(config, true, prompts);
  expect_same_bits(forked, run_model(config, true, prompts), "side stream, run twice");
  expect_same_bits(forked, run_model(config, false, prompts), "side stream against one stream");
}

INSTANTIATE_TEST_SUITE_P(Released, SideStreamCuda,
                         ::testing::Values(std::make_tuple("deepseek-v2-lite", false),
                                           std::make_tuple("deepseek-v3", false),
                                           std::make_tuple("deepseek-v3", true)),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param) + (std::get<1>(info.param) ? "_fp8" : "_bf16");
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

}  // namespace
}  // namespace mlaserve
