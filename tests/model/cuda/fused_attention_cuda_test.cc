// The fused absorbed attention (ModelOptions::fused_absorbed_attention, ops/mla_absorbed_attention.h)
// in the model: no tiny model has the 16 or more heads the fused kernel takes (tests/data/tiny-*:
// 2-4), so this runs DeepSeek-V2-Lite's shapes (16 heads, and 32 as a rank of V2 under TP4; dummy
// weights, cut to 4 layers, BF16): a prefill of 3 prompts (1,200, 37 and 1 tokens) and 3 decode
// steps of the 3 sequences, one new token each (the fused kernel's case: B = 3), with the fused
// kernel and with the three ops it replaces. The tokens are fixed up front (no greedy feedback), so
// both runs see the same inputs.
//
// Bound. The two paths differ only inside the attention: its blocks are split over 16 CTAs where
// mla_decode's schedule splits them otherwise (fp32 summation order, the bf16 rounding of P), so
// o differs by ~1e-2 relative at most (mla_absorbed_attention_cuda_test.cc) before o_proj, and the
// logits by much less than the whole bf16 GPU model's distance to the fp32 reference, which
// golden_cuda_test.cc bounds by a relative L2 error of 0.03: that bound here, per step. A wrong
// head, row or block costs O(1). The fused run twice gives the same bits. Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/memory.h"
#include "model/presets.h"
#include "ops/mla_absorbed_attention.h"
#include "../step_batch.h"
#include "../v2_lite_dummy.h"

namespace mlaserve {
namespace {

constexpr int64_t kLayers = 4;  // of V2-Lite's 27: the attention is the same in each

// The logits [R, V] of the prefill and each decode step (host); decode token k of sequence s is
// tokens[k][s].
std::vector<Tensor> run_model(bool fused, int64_t heads, std::vector<std::vector<int32_t>> seqs,
                              const std::vector<std::vector<int32_t>>& tokens) {
  ModelOptions options;
  options.fused_absorbed_attention = fused;
  DeepSeekModel model = testing::v2_lite_gpu_model(kLayers, /*seed=*/5, options, heads);
  return testing::run_fixed_steps(model, std::move(seqs), tokens, /*blocks_per_seq=*/24);  // 1,536 tokens
}

double rel_l2(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.shape(), want.shape());
  double num = 0.0, den = 0.0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double g = got.data<float>()[i], w = want.data<float>()[i];
    num += (g - w) * (g - w);
    den += w * w;
  }
  return std::sqrt(num / den);
}

// The decode steps of three sequences with `heads` heads, fused against the three ops.
void check_decode_matches_the_three_ops(int64_t heads) {
  const int64_t vocab = preset_config("deepseek-v2-lite").vocab_size;
  std::mt19937 rng(9);
  auto token = [&] { return static_cast<int32_t>(rng() % vocab); };
  std::vector<std::vector<int32_t>> prompts;
  for (int len : {1200, 37, 1}) {
    std::vector<int32_t> p(static_cast<size_t>(len));
    for (int32_t& t : p) t = token();
    prompts.push_back(p);
  }
  std::vector<std::vector<int32_t>> tokens(3);
  for (auto& step : tokens) step = {token(), token(), token()};

  const std::vector<Tensor> fused = run_model(true, heads, prompts, tokens);
  const std::vector<Tensor> three = run_model(false, heads, prompts, tokens);
  const std::vector<Tensor> again = run_model(true, heads, prompts, tokens);
  ASSERT_EQ(fused.size(), three.size());
  for (size_t k = 0; k < fused.size(); ++k) {
    SCOPED_TRACE("step " + std::to_string(k) + " (0: the prefill)");
    EXPECT_LT(rel_l2(fused[k], three[k]), 0.03);
    EXPECT_EQ(std::memcmp(fused[k].data<float>(), again[k].data<float>(), fused[k].numel() * sizeof(float)), 0)
        << "the fused run twice";
  }
}

TEST(FusedAttentionCuda, V2LiteDecodeMatchesTheThreeOps) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU visible: the fused attention is tested on the GPU machine";
  check_decode_matches_the_three_ops(16);
}

TEST(FusedAttentionCuda, ThirtyTwoHeadsDecodeMatchesTheThreeOps) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU visible: the fused attention is tested on the GPU machine";
  // Two clusters a sequence: the GPU must hold 6 for the fused kernel to run here (an H200 holds 7;
  // mla_absorbed_attention_cuda_test checks the count).
  if (ops::mla_absorbed_attention_max_seqs(32, Device::kCUDA) < 3) GTEST_SKIP() << "this GPU holds < 6 clusters of 16";
  check_decode_matches_the_three_ops(32);
}

}  // namespace
}  // namespace mlaserve
