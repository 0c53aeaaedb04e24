// moe_route_cuda (through the dispatch) against moe_route_cpu on the same f32 logits, with each
// family's real router: V2-Lite (softmax, greedy, 6 of 64), V2 (softmax, group-limited by group
// max, 8 groups of 20 keep 3, 6 of 160, scale 16; also with norm_topk_prob), V3 (sigmoid,
// noaux_tc with top-2-sum group scores, 8 groups of 32 keep 4, 8 of 256, bias, normalise then
// scale 2.5; also an all-negative bias, where a 0 fill instead of -inf would pick masked
// experts). T = 1, 37 and 4096; plus logits rounded to a coarse grid, so that equal scores and
// equal group scores are common and the lower-index rule decides.
//
// Expert ids must be EXACTLY the CPU's: the GPU performs the same fp32 operations in the same
// order, with a correctly rounded exp (see moe_router.cuh). Weights are the same fp32 values
// (s[id], normalised and scaled in the same order); the check allows 1e-6 relative for a last
// bit from exp, and records the worst error seen. Outputs are poisoned first.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/moe_router.h"

namespace mlaserve::ops {
namespace {

using testing::count_nan;
using testing::CudaOpTest;
using testing::poisoned_gpu;

RouterParams v2_lite() {
  RouterParams p;
  p.top_k = 6;
  return p;
}

RouterParams v2(bool norm_topk_prob = false) {
  RouterParams p;
  p.method = RouterTopkMethod::kGroupLimitedGreedy;
  p.n_group = 8;
  p.topk_group = 3;
  p.top_k = 6;
  p.norm_topk_prob = norm_topk_prob;
  p.routed_scaling_factor = 16.0f;
  return p;
}

RouterParams v3(bool norm_topk_prob = true) {
  RouterParams p;
  p.scoring = RouterScoring::kSigmoid;
  p.method = RouterTopkMethod::kNoAuxTc;
  p.weighting = RouterWeighting::kNormalizeThenScale;
  p.n_group = 8;
  p.topk_group = 4;
  p.top_k = 8;
  p.norm_topk_prob = norm_topk_prob;
  p.routed_scaling_factor = 2.5f;
  return p;
}

class MoeRouterCuda : public CudaOpTest {
 protected:
  // grid > 0 rounds the logits to multiples of 1/grid (ties); bias_mean shifts the V3 bias.
  void check(const RouterParams& params, int64_t t, int64_t e, uint64_t seed, float grid = 0.0f,
             float bias_mean = 0.0f) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.5f);
    Tensor logits = Tensor::empty({t, e}, DType::kF32);
    for (int64_t i = 0; i < t * e; ++i) {
      const float v = normal(rng);
      logits.data<float>()[i] = grid > 0.0f ? std::round(v * grid) / grid : v;
    }
    Tensor bias;
    if (params.method == RouterTopkMethod::kNoAuxTc) {
      bias = Tensor::empty({e}, DType::kF32);
      std::normal_distribution<float> b(bias_mean, 0.05f);
      for (int64_t i = 0; i < e; ++i) bias.data<float>()[i] = grid > 0.0f ? std::round(b(rng) * 64) / 64 : b(rng);
    }
    const int64_t k = params.top_k;
    RouterOutputs want{Tensor::empty({t, k}, DType::kF32), Tensor::empty({t, k}, DType::kI32)};
    moe_route_cpu(logits, bias, params, want);

    RouterOutputs got{poisoned_gpu({t, k}, DType::kF32), poisoned_gpu({t, k}, DType::kI32)};
    moe_route(logits.to(Device::kCUDA), bias.defined() ? bias.to(Device::kCUDA) : Tensor(), params, got, stream());
    const Tensor ids = to_host(got.expert_ids), weights = to_host(got.weights);
    const std::vector<float> w = weights.to_vector(), want_w = want.weights.to_vector();
    ASSERT_EQ(count_nan(w), 0) << "weights left unwritten";
    int64_t id_mismatches = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < t * k; ++i) {
      id_mismatches += ids.data<int32_t>()[i] != want.expert_ids.data<int32_t>()[i] ? 1 : 0;
      worst = std::max(worst, std::abs(static_cast<double>(w[i]) - want_w[i]) / std::max(std::abs(want_w[i]), 1e-30f));
    }
    testing::record_error("router_weight_worst_rel_error", worst);
    EXPECT_EQ(id_mismatches, 0) << "of " << t * k << " expert ids differ from the CPU's";
    EXPECT_LE(worst, 1e-6);
  }
};

TEST_F(MoeRouterCuda, SmallEveryFamily) {
  check(v2_lite(), 3, 64, 1);
  check(v2(), 3, 160, 2);
  check(v3(), 3, 256, 3);
}

TEST_F(MoeRouterCuda, SmallTies) {
  check(v2_lite(), 9, 64, 4, 2.0f);
  check(v2(), 9, 160, 5, 2.0f);
  check(v3(), 9, 256, 6, 2.0f);
}

TEST_F(MoeRouterCuda, SmallFewExpertsPerGroup) {  // noaux_tc groups of 2, group-limited groups of 1
  RouterParams p = v3();
  p.n_group = 8;
  p.topk_group = 3;
  p.top_k = 4;
  check(p, 5, 16, 7);
  RouterParams q = v2();
  q.n_group = 16;
  q.topk_group = 5;
  q.top_k = 3;
  check(q, 5, 16, 8);
}

TEST_F(MoeRouterCuda, V2LiteGreedy) {
  check(v2_lite(), 1, 64, 11);
  check(v2_lite(), 4096, 64, 12);
}

TEST_F(MoeRouterCuda, V2GroupLimited) {
  check(v2(), 37, 160, 13);
  check(v2(), 4096, 160, 14);
  check(v2(/*norm_topk_prob=*/true), 4096, 160, 15);
}

TEST_F(MoeRouterCuda, V3NoAuxTc) {
  check(v3(), 1, 256, 16);
  check(v3(), 4096, 256, 17);
  check(v3(/*norm_topk_prob=*/false), 4096, 256, 18);
}

TEST_F(MoeRouterCuda, V3NegativeBiasMasksWithMinusInfinity) { check(v3(), 4096, 256, 19, 0.0f, -3.0f); }

TEST_F(MoeRouterCuda, TiesAtScale) {
  check(v2(), 4096, 160, 20, 4.0f);
  check(v3(), 4096, 256, 21, 4.0f);
}

}  // namespace
}  // namespace mlaserve::ops
