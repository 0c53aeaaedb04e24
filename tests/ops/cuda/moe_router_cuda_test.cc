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
//
// moe_route_and_gather (the router fused with the grouping and row gather at decode sizes) is
// tested here too, against the two ops it replaces and the CPU reference (MoeRouteGatherCuda), and
// moe_router_route_and_gather (the router's GEMV in the same kernel) against linear and that op
// (MoeRouterRouteGatherCuda).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/cuda/linear_gemv.h"
#include "ops/linear.h"
#include "ops/moe_dispatch.h"
#include "ops/moe_route_gather.h"
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

struct RouterInputs {
  Tensor logits;  // [T, E] f32, host
  Tensor bias;    // [E] f32 for noaux_tc, else undefined
};

// grid > 0 rounds the logits to multiples of 1/grid (ties); bias_mean shifts the V3 bias.
RouterInputs random_router_inputs(const RouterParams& params, int64_t t, int64_t e, std::mt19937_64& rng,
                                  float grid = 0.0f, float bias_mean = 0.0f) {
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
  return {logits, bias};
}

class MoeRouterCuda : public CudaOpTest {
 protected:
  void check(const RouterParams& params, int64_t t, int64_t e, uint64_t seed, float grid = 0.0f,
             float bias_mean = 0.0f) {
    std::mt19937_64 rng(seed);
    const auto [logits, bias] = random_router_inputs(params, t, e, rng, grid, bias_mean);
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

// V3's routing goes by groups (route_tokens_by_groups): a token a CTA up to 512 tokens, 8 a CTA
// above (1,001: the last CTA's one token; 4,096).
TEST_F(MoeRouterCuda, V3NoAuxTc) {
  check(v3(), 1, 256, 16);
  check(v3(), 4096, 256, 17);
  check(v3(/*norm_topk_prob=*/false), 4096, 256, 18);
  check(v3(), 1001, 256, 22);
}

// Sigmoid scores over 2 groups of 32 experts, one kept, top-4: by groups too (a CTA's 8 warps
// over 2 groups x 4 or 8 tokens), with ties on a coarse grid.
TEST_F(MoeRouterCuda, SmallTwoGroupsOfThirtyTwo) {
  RouterParams p = v3();
  p.n_group = 2;
  p.topk_group = 1;
  p.top_k = 4;
  check(p, 5, 64, 23);
  check(p, 700, 64, 24, 2.0f);
}

TEST_F(MoeRouterCuda, V3NegativeBiasMasksWithMinusInfinity) { check(v3(), 4096, 256, 19, 0.0f, -3.0f); }

TEST_F(MoeRouterCuda, TiesAtScale) {
  check(v2(), 4096, 160, 20, 4.0f);
  check(v3(), 4096, 256, 21, 4.0f);
}

// The raw 32-bit patterns of an f32 or i32 host tensor.
std::vector<uint32_t> bits32(const Tensor& host) {
  std::vector<uint32_t> bits(static_cast<size_t>(host.numel()));
  std::memcpy(bits.data(), host.raw(), bits.size() * sizeof(uint32_t));
  return bits;
}

MoeRouteGatherOutputs poisoned_route_gather(int64_t t, int64_t k, int64_t e, int64_t h) {
  return {{poisoned_gpu({t, k}, DType::kF32), poisoned_gpu({t, k}, DType::kI32)},
          {poisoned_gpu({e + 1}, DType::kI32), poisoned_gpu({t * k}, DType::kI32), poisoned_gpu({t * k}, DType::kI32)},
          poisoned_gpu({t * k, h}, DType::kBF16)};
}

// moe_route_and_gather_cuda (through the dispatch): the one-kernel path (T·k <= 64, H a multiple
// of 8) and the fallback to the two ops. Against moe_route then moe_group_and_gather on the GPU:
// every output bit for bit (same routing code, an integer sort, a copy). Against the CPU
// reference: ids, offsets, sorted pairs and tokens and gathered rows exactly, weights to 1e-6
// relative (the router's bound above). Every output poisoned first.
class MoeRouteGatherCuda : public CudaOpTest {
 protected:
  // `padding` > 0: the last `padding` rows have slot -1 (RouterParams::row_slots; the others 0, 1, ..),
  // so they are routed as the real rows on both sides.
  void check(const RouterParams& routing, int64_t t, int64_t e, int64_t h, uint64_t seed, float grid = 0.0f,
             int64_t padding = 0, float bias_mean = 0.0f) {
    std::mt19937_64 rng(seed);
    RouterParams params = routing, cpu_params = routing;
    if (padding > 0) {
      std::vector<int64_t> slots(static_cast<size_t>(t));
      for (int64_t i = 0; i < t; ++i) slots[static_cast<size_t>(i)] = i < t - padding ? i : -1;
      cpu_params.row_slots = Tensor::empty({t}, DType::kI64);
      std::copy(slots.begin(), slots.end(), cpu_params.row_slots.data<int64_t>());
      params.row_slots = cpu_params.row_slots.to(Device::kCUDA);
    }
    const auto [logits, bias] = random_router_inputs(params, t, e, rng, grid, bias_mean);
    const Tensor x = testing::random_tensor({t, h}, DType::kBF16, rng);
    const int64_t k = params.top_k;
    const std::string where = "T " + std::to_string(t) + " E " + std::to_string(e) + " k " + std::to_string(k) +
                              " H " + std::to_string(h);
    const Tensor logits_gpu = logits.to(Device::kCUDA), x_gpu = x.to(Device::kCUDA);
    const Tensor bias_gpu = bias.defined() ? bias.to(Device::kCUDA) : Tensor();

    MoeRouteGatherOutputs got = poisoned_route_gather(t, k, e, h);
    moe_route_and_gather(logits_gpu, bias_gpu, params, x_gpu, got, stream());
    MoeRouteGatherOutputs two = poisoned_route_gather(t, k, e, h);  // the two ops in sequence
    moe_route(logits_gpu, bias_gpu, params, two.route, stream());
    moe_group_and_gather(two.route.expert_ids, e, x_gpu, two.grouping, two.gathered, stream());
    MoeRouteGatherOutputs want{{Tensor::empty({t, k}, DType::kF32), Tensor::empty({t, k}, DType::kI32)},
                               {Tensor::empty({e + 1}, DType::kI32), Tensor::empty({t * k}, DType::kI32),
                                Tensor::empty({t * k}, DType::kI32)},
                               Tensor::empty({t * k, h}, DType::kF32)};  // bf16 rows, exact in f32
    moe_route_and_gather_cpu(logits, bias, cpu_params, x.to_f32(), want);

    const std::vector<std::pair<const char*, std::pair<const Tensor*, const Tensor*>>> ints{
        {"weights", {&got.route.weights, &two.route.weights}},
        {"expert_ids", {&got.route.expert_ids, &two.route.expert_ids}},
        {"expert_offsets", {&got.grouping.expert_offsets, &two.grouping.expert_offsets}},
        {"sorted_pairs", {&got.grouping.sorted_pairs, &two.grouping.sorted_pairs}},
        {"sorted_tokens", {&got.grouping.sorted_tokens, &two.grouping.sorted_tokens}}};
    for (const auto& [name, pair] : ints) {
      EXPECT_EQ(testing::mismatches(bits32(to_host(*pair.first)), bits32(to_host(*pair.second))), 0)
          << where << ": " << name << " differ from the two-op path's";
    }
    const std::vector<uint16_t> got_rows = testing::bf16_bits(to_host(got.gathered));
    EXPECT_EQ(testing::mismatches(got_rows, testing::bf16_bits(to_host(two.gathered))), 0)
        << where << ": gathered rows differ from the two-op path's";

    EXPECT_EQ(testing::mismatches(bits32(to_host(got.route.expert_ids)), bits32(want.route.expert_ids)), 0) << where;
    EXPECT_EQ(testing::mismatches(bits32(to_host(got.grouping.expert_offsets)), bits32(want.grouping.expert_offsets)), 0)
        << where;
    EXPECT_EQ(testing::mismatches(bits32(to_host(got.grouping.sorted_pairs)), bits32(want.grouping.sorted_pairs)), 0)
        << where;
    EXPECT_EQ(testing::mismatches(bits32(to_host(got.grouping.sorted_tokens)), bits32(want.grouping.sorted_tokens)), 0)
        << where;
    EXPECT_EQ(testing::mismatches(to_host(got.gathered).to_vector(), want.gathered.to_vector()), 0)
        << where << ": gathered rows differ from the CPU's (or were left poisoned)";
    const std::vector<float> w = to_host(got.route.weights).to_vector(), want_w = want.route.weights.to_vector();
    ASSERT_EQ(count_nan(w), 0) << where << ": weights left unwritten";
    double worst = 0.0;
    for (size_t i = 0; i < w.size(); ++i) {
      worst = std::max(worst, std::abs(static_cast<double>(w[i]) - want_w[i]) / std::max(std::abs(want_w[i]), 1e-30f));
    }
    EXPECT_LE(worst, 1e-6) << where;
  }
};

TEST_F(MoeRouteGatherCuda, SmallEveryFamily) {
  check(v2_lite(), 3, 64, 64, 101);
  check(v2(), 3, 160, 64, 102);
  check(v3(), 3, 256, 64, 103);
  check(v2_lite(), 3, 64, 20, 104);  // width not a multiple of 8: the two ops
}

TEST_F(MoeRouteGatherCuda, SmallTies) {
  check(v2_lite(), 9, 64, 64, 105, 2.0f);
  check(v3(), 8, 256, 64, 106, 2.0f);
}

// Both sides of the one-kernel limit (64 pairs): V2-Lite (top-6 of 64, H 2048: 10 x 6 = 60 and
// 11 x 6 = 66 pairs), V2 (group-limited top-6 of 160, H 5120), V3 (sigmoid noaux_tc top-8 of
// 256, H 7168: 8 x 8 = 64 and 9 x 8 = 72).
TEST_F(MoeRouteGatherCuda, V2LiteDecodeBatches) {
  for (int64_t t : {1, 2, 8, 10, 11}) check(v2_lite(), t, 64, 2048, 110 + t);
}

TEST_F(MoeRouteGatherCuda, V2DecodeBatches) {
  for (int64_t t : {1, 8, 10}) check(v2(/*norm_topk_prob=*/t == 8), t, 160, 5120, 130 + t);
}

TEST_F(MoeRouteGatherCuda, V3DecodeBatches) {
  for (int64_t t : {1, 4, 8, 9}) check(v3(), t, 256, 7168, 150 + t);
  check(v3(), 8, 256, 7168, 160, 4.0f);  // ties
}

// Sigmoid routing over groups of 32 experts, which the one kernel spreads over its warps
// (route_tokens_by_groups, up to 8 tokens: each warp's tasks at once) and the two ops' kernel over
// one CTA a token: the same bits are asked for, and the CPU's ids. V3 with an all-negative bias
// (every b below 0: the -inf of the groups left out must rank below them), without
// normalisation, on coarse grids (equal group scores and equal b decided by the lower index); 64
// experts in 2 groups of 32, one kept, top-4; 2 and 8 tokens.
TEST_F(MoeRouteGatherCuda, GroupsOverWarps) {
  check(v3(), 1, 256, 7168, 180, 0.0f, 0, -3.0f);
  check(v3(/*norm_topk_prob=*/false), 1, 256, 7168, 182);
  check(v3(), 1, 256, 64, 183, 1.0f);
  check(v3(), 1, 256, 64, 184, 4.0f);
  RouterParams two_groups = v3();
  two_groups.n_group = 2;
  two_groups.topk_group = 1;
  two_groups.top_k = 4;
  check(two_groups, 1, 64, 64, 185);
  check(two_groups, 1, 64, 64, 186, 2.0f);
  check(v3(), 2, 256, 7168, 187, 0.0f, 0, -3.0f);
  check(v3(), 8, 256, 7168, 181, 0.0f, 0, -3.0f);
}

// A decode graph's padding rows (slot -1) routed as real rows, in the one-kernel path and the two ops:
// V2-Lite 10 real rows of 16 (96 pairs: the two ops) and 3 of 4 (the one kernel), V3 5 of 8 and 9
// of 16.
TEST_F(MoeRouteGatherCuda, PaddingRowsAsRealRows) {
  check(v2_lite(), 16, 64, 2048, 170, 0.0f, 6);
  check(v2_lite(), 4, 64, 2048, 171, 0.0f, 1);
  check(v3(), 8, 256, 7168, 172, 0.0f, 3);
  check(v3(), 16, 256, 7168, 173, 0.0f, 7);
}

// moe_router_route_and_gather_cuda (through the dispatch): the router's GEMV and the routing in
// one kernel (T <= 8 tokens, T·k <= 64 pairs, H a multiple of 8; one cluster of CTAs up to 64
// experts, the arrivals counter past that; V3's routing by groups only up to 4 tokens, past which
// the op runs that kernel's GEMV, then the routing and grouping ops), and the fallback to linear +
// moe_route_and_gather. Against the GEMV then moe_route_and_gather on the GPU: logits and every
// output bit for bit (the one kernel runs the CUDA-core GEMV's code, so that GEMV forced where it
// applies, since linear's own choice takes the tensor cores from 4 tokens; linear on the fallback,
// which runs it; then the one-CTA routing code on those logits). Against the CPU reference
// (linear_cpu in fp32, then the CPU routing): logits within 1e-5 of Σ|x·w| for each logit (fp32
// sums of exact bf16 products in another order: K / 256 + 8 roundings of at most 2^-24 relative,
// 36 at K = 7168, far below 1e-5); the routing is not compared with the CPU's, since logits that
// differ in their last bits may reorder near-ties. Each call runs twice (the arrivals counter
// must come back to zero, and the second call must give the same bits), then a third time without
// `gathered` (route and group only, as the FP8 MoE's prefill calls it): the same bits for every
// other output; outputs poisoned first.
class MoeRouterRouteGatherCuda : public CudaOpTest {
 protected:
  void check(const RouterParams& params, int64_t t, int64_t e, int64_t h, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const Tensor x = testing::random_tensor({t, h}, DType::kBF16, rng);
    const Tensor w = testing::random_tensor({e, h}, DType::kBF16, rng);
    const Tensor bias = random_router_inputs(params, 1, e, rng).bias;
    const int64_t k = params.top_k;
    const std::string where = "T " + std::to_string(t) + " E " + std::to_string(e) + " k " + std::to_string(k) +
                              " H " + std::to_string(h);
    const Tensor x_gpu = x.to(Device::kCUDA), w_gpu = w.to(Device::kCUDA);
    const Tensor bias_gpu = bias.defined() ? bias.to(Device::kCUDA) : Tensor();

    Tensor two_logits = poisoned_gpu({t, e}, DType::kF32);  // the two ops in sequence
    MoeRouteGatherOutputs two = poisoned_route_gather(t, k, e, h);
    if (t <= 8 && t * k <= 64 && h % 8 == 0) {  // the one kernel's path
      linear_gemv_cuda(x_gpu, w_gpu, two_logits, cuda_stream(), GemvKernel::kCudaCore);
    } else {
      linear(x_gpu, w_gpu, two_logits, stream());
    }
    moe_route_and_gather(two_logits, bias_gpu, params, x_gpu, two, stream());

    Tensor arrivals = Tensor::zeros({1}, DType::kI32, Device::kCUDA);
    for (int call = 0; call < 3; ++call) {
      const bool gather = call < 2;
      const std::string at = where + " call " + std::to_string(call) + (gather ? "" : " without gathered");
      Tensor logits = poisoned_gpu({t, e}, DType::kF32);
      MoeRouteGatherOutputs got = poisoned_route_gather(t, k, e, h);
      if (!gather) got.gathered = Tensor();
      moe_router_route_and_gather(x_gpu, w_gpu, bias_gpu, params, logits, arrivals, got, stream());
      EXPECT_EQ(to_host(arrivals).data<int32_t>()[0], 0) << at << ": the arrivals counter was not left at zero";
      const std::vector<std::pair<const char*, std::pair<const Tensor*, const Tensor*>>> outputs{
          {"logits", {&logits, &two_logits}},
          {"weights", {&got.route.weights, &two.route.weights}},
          {"expert_ids", {&got.route.expert_ids, &two.route.expert_ids}},
          {"expert_offsets", {&got.grouping.expert_offsets, &two.grouping.expert_offsets}},
          {"sorted_pairs", {&got.grouping.sorted_pairs, &two.grouping.sorted_pairs}},
          {"sorted_tokens", {&got.grouping.sorted_tokens, &two.grouping.sorted_tokens}}};
      for (const auto& [name, pair] : outputs) {
        EXPECT_EQ(testing::mismatches(bits32(to_host(*pair.first)), bits32(to_host(*pair.second))), 0)
            << at << ": " << name << " differ from linear + moe_route_and_gather";
      }
      if (!gather) continue;
      EXPECT_EQ(testing::mismatches(testing::bf16_bits(to_host(got.gathered)), testing::bf16_bits(to_host(two.gathered))),
                0)
          << at << ": gathered rows differ from linear + moe_route_and_gather";
    }

    Tensor want_logits = Tensor::empty({t, e}, DType::kF32);
    MoeRouteGatherOutputs want{{Tensor::empty({t, k}, DType::kF32), Tensor::empty({t, k}, DType::kI32)},
                               {Tensor::empty({e + 1}, DType::kI32), Tensor::empty({t * k}, DType::kI32),
                                Tensor::empty({t * k}, DType::kI32)},
                               Tensor::empty({t * k, h}, DType::kF32)};
    const Tensor xf = x.to_f32(), wf = w.to_f32();
    moe_router_route_and_gather_cpu(xf, wf, bias, params, want_logits, want);
    const Tensor got_logits = to_host(two_logits);
    double worst = 0.0;
    for (int64_t i = 0; i < t; ++i) {
      for (int64_t j = 0; j < e; ++j) {
        double scale = 0.0;
        for (int64_t c = 0; c < h; ++c) scale += std::abs(xf.data<float>()[i * h + c] * wf.data<float>()[j * h + c]);
        const double err = std::abs(static_cast<double>(got_logits.data<float>()[i * e + j]) -
                                    want_logits.data<float>()[i * e + j]);
        worst = std::max(worst, err / std::max(scale, 1e-30));
      }
    }
    testing::record_error("router_logits_worst_error_over_abs_sum", worst);
    EXPECT_LE(worst, 1e-5) << where << ": logits against the CPU's";
  }
};

// The one-kernel path at each family's decode batches (V2-Lite top-6 of 64 at H 2048, V2
// group-limited top-6 of 160 at H 5120, V3 noaux_tc top-8 of 256 at H 7168: K taking one, two
// and four chunks a warp), and the fallbacks: 9 tokens (past the GEMV's 8), 11 V2-Lite tokens (66
// pairs), H not a multiple of 8.
TEST_F(MoeRouterRouteGatherCuda, V2LiteDecodeBatches) {
  for (int64_t t : {1, 2, 3, 4, 8, 9, 11}) check(v2_lite(), t, 64, 2048, 210 + t);
}

TEST_F(MoeRouterRouteGatherCuda, V2DecodeBatches) {
  for (int64_t t : {1, 5, 8}) check(v2(/*norm_topk_prob=*/t == 8), t, 160, 5120, 230 + t);
}

TEST_F(MoeRouterRouteGatherCuda, V3DecodeBatches) {
  for (int64_t t : {1, 2, 4, 8, 9}) check(v3(), t, 256, 7168, 250 + t);
}

// 64 experts in 2 groups of 32 (sigmoid, one group kept, top-4): the cluster kernel's CTA 0 routes
// them over its 8 warps (route_tokens_by_groups).
TEST_F(MoeRouterRouteGatherCuda, SmallGroupsOverTheClustersWarps) {
  RouterParams two_groups = v3();
  two_groups.n_group = 2;
  two_groups.topk_group = 1;
  two_groups.top_k = 4;
  check(two_groups, 1, 64, 256, 291);
}

TEST_F(MoeRouterRouteGatherCuda, SmallOddWidth) { check(v2_lite(), 2, 64, 20, 270); }

// The GEMV's CTAs as one cluster (up to 16 CTAs of 4 experts: E <= 64), the logits meeting in CTA
// 0's shared memory: clusters of 2, 8, 15 (the last CTA's rows partly past E) and 16 CTAs, and 17
// CTAs (68 experts: the counter kernel), at 1 and 5 tokens.
TEST_F(MoeRouterRouteGatherCuda, SmallClusterSizes) {
  uint64_t seed = 280;
  for (int64_t e : {8, 32, 58, 64, 68}) {
    for (int64_t t : {1, 5}) check(v2_lite(), t, e, 256, seed++);
  }
}

}  // namespace
}  // namespace mlaserve::ops
