// MoE router (MODEL_SPEC §5.2, §10 item 6) and dispatch/combine (§5.3).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "op_test_util.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/moe_combine_norm.h"
#include "ops/moe_dispatch.h"
#include "ops/moe_experts.h"
#include "ops/moe_route_gather.h"
#include "ops/moe_router.h"
#include "ops/rms_norm.h"
#include "ops/silu_mul.h"

namespace mlaserve::ops {
namespace {

using testing::i32_tensor;
using testing::poisoned;
using testing::random_tensor;
using testing::to_doubles;

RouterParams v2_lite() {  // softmax, greedy, k 6 of 64, no normalisation, scale 1
  RouterParams p;
  p.top_k = 6;
  return p;
}

RouterParams v2() {  // softmax, group-limited (8 groups of 20, keep 3), k 6, scale 16
  RouterParams p;
  p.method = RouterTopkMethod::kGroupLimitedGreedy;
  p.n_group = 8;
  p.topk_group = 3;
  p.top_k = 6;
  p.routed_scaling_factor = 16.0f;
  return p;
}

RouterParams v3() {  // sigmoid, noaux_tc (8 groups of 32, keep 4), k 8, normalise, scale 2.5
  RouterParams p;
  p.scoring = RouterScoring::kSigmoid;
  p.method = RouterTopkMethod::kNoAuxTc;
  p.weighting = RouterWeighting::kNormalizeThenScale;
  p.n_group = 8;
  p.topk_group = 4;
  p.top_k = 8;
  p.norm_topk_prob = true;
  p.routed_scaling_factor = 2.5f;
  return p;
}

// The spec's steps in double, written independently of the implementation (full sorts).
void naive_route(const std::vector<double>& logits, const std::vector<double>& bias, const RouterParams& p,
                 std::vector<int>& ids, std::vector<double>& w) {
  const auto e = static_cast<int>(logits.size());
  std::vector<double> s(e);
  if (p.scoring == RouterScoring::kSigmoid) {
    for (int i = 0; i < e; ++i) s[i] = 1.0 / (1.0 + std::exp(-logits[i]));
  } else {
    const double m = *std::max_element(logits.begin(), logits.end());
    double z = 0.0;
    for (int i = 0; i < e; ++i) z += std::exp(logits[i] - m);
    for (int i = 0; i < e; ++i) s[i] = std::exp(logits[i] - m) / z;
  }
  std::vector<double> b = s;
  for (size_t i = 0; i < bias.size(); ++i) b[i] += bias[i];
  auto rank = [](const std::vector<double>& v) {
    std::vector<int> order(v.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return v[x] > v[y]; });
    return order;
  };
  if (p.method != RouterTopkMethod::kGreedy) {
    const int per = e / static_cast<int>(p.n_group);
    std::vector<double> group(p.n_group);
    for (int g = 0; g < p.n_group; ++g) {
      std::vector<double> m(b.begin() + g * per, b.begin() + (g + 1) * per);
      std::sort(m.rbegin(), m.rend());
      group[g] = p.method == RouterTopkMethod::kNoAuxTc ? m[0] + m[1] : m[0];
    }
    const std::vector<int> groups = rank(group);
    for (int i = 0; i < e; ++i) {
      if (std::find(groups.begin(), groups.begin() + p.topk_group, i / per) == groups.begin() + p.topk_group) {
        b[i] = -INFINITY;
      }
    }
  }
  const std::vector<int> order = rank(b);
  ids.assign(order.begin(), order.begin() + p.top_k);
  w.clear();
  for (int id : ids) w.push_back(s[id]);
  const double sum = std::accumulate(w.begin(), w.end(), 0.0);
  bool normalize = p.norm_topk_prob, scale = true;
  if (p.weighting == RouterWeighting::kNormalizeOrScale) {
    normalize = p.norm_topk_prob && p.top_k > 1;
    scale = !normalize;
  }
  for (double& x : w) {
    if (normalize) x /= sum + 1e-20;
    if (scale) x *= p.routed_scaling_factor;
  }
}

RouterOutputs route(const Tensor& logits, const Tensor& bias, const RouterParams& p) {
  RouterOutputs o{poisoned({logits.dim(0), p.top_k}, DType::kF32), poisoned({logits.dim(0), p.top_k}, DType::kI32)};
  moe_route_cpu(logits, bias, p, o);
  return o;
}

void expect_matches_naive(const RouterParams& p, int64_t e, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t t = 40;
  Tensor logits = random_tensor({t, e}, DType::kF32, rng, 2.0f);
  Tensor bias = p.method == RouterTopkMethod::kNoAuxTc ? random_tensor({e}, DType::kF32, rng, 0.3f) : Tensor();
  RouterOutputs o = route(logits, bias, p);
  testing::expect_all_written(o.weights);
  const auto l = to_doubles(logits);
  const std::vector<double> bd = bias.defined() ? to_doubles(bias) : std::vector<double>{};
  for (int64_t i = 0; i < t; ++i) {
    std::vector<int> ids;
    std::vector<double> w;
    naive_route(std::vector<double>(l.begin() + i * e, l.begin() + (i + 1) * e), bd, p, ids, w);
    for (int64_t j = 0; j < p.top_k; ++j) {
      // Random logits leave gaps between scores far above fp32 rounding, so the selection is
      // exact; the weights carry a few fp32 roundings (exp, sum, divide, scale).
      ASSERT_EQ(o.expert_ids.data<int32_t>()[i * p.top_k + j], ids[j]) << "token " << i << " slot " << j;
      ASSERT_NEAR(o.weights.data<float>()[i * p.top_k + j], w[j], 1e-6 * std::max(1.0, std::abs(w[j])));
    }
  }
}

TEST(MoeRouter, V2LiteGreedySoftmaxMatchesNaive) { expect_matches_naive(v2_lite(), 64, 40); }
TEST(MoeRouter, V2GroupLimitedSoftmaxMatchesNaive) { expect_matches_naive(v2(), 160, 41); }
TEST(MoeRouter, V3NoAuxTcSigmoidMatchesNaive) { expect_matches_naive(v3(), 256, 42); }

TEST(MoeRouter, V2FamilyNormalisesXorScales) {
  RouterParams p = v2();
  p.norm_topk_prob = true;  // HF-remote V2: normalise, and then no scaling
  expect_matches_naive(p, 160, 43);
  p.top_k = 1;  // k == 1: no normalisation, scaling instead
  expect_matches_naive(p, 160, 44);
  RouterParams q = v3();
  q.norm_topk_prob = false;  // V3 family without normalisation: still scaled
  expect_matches_naive(q, 256, 45);
}

// Logits whose sigmoid is exactly-ish p.
float logit(double p) { return static_cast<float>(std::log(p / (1.0 - p))); }

RouterParams two_groups_of_four(int64_t k) {
  RouterParams p = v3();
  p.n_group = 2;
  p.topk_group = 1;
  p.top_k = k;
  return p;
}

TEST(MoeRouter, V3GroupScoreIsTopTwoSumNotMax) {
  // Group 0 = {0.9, 0.1, 0.1, 0.1}: max 0.9, top-2 sum 1.0. Group 1 = {0.6, 0.6, 0.1, 0.1}:
  // max 0.6, top-2 sum 1.2. V3 keeps group 1; the V2 rule (max) would keep group 0.
  const std::vector<double> probs = {0.9, 0.1, 0.1, 0.1, 0.6, 0.6, 0.1, 0.1};
  std::vector<float> l;
  for (double p : probs) l.push_back(logit(p));
  Tensor logits = Tensor::from_floats(l, {1, 8}, DType::kF32);
  Tensor zero_bias = Tensor::zeros({8}, DType::kF32);
  RouterOutputs v3_out = route(logits, zero_bias, two_groups_of_four(2));
  EXPECT_EQ(v3_out.expert_ids.to_vector(), std::vector<float>({4, 5}));

  RouterParams by_max = two_groups_of_four(2);
  by_max.method = RouterTopkMethod::kGroupLimitedGreedy;  // the V2 rule, same scores
  RouterOutputs max_out = route(logits, Tensor(), by_max);
  EXPECT_EQ(max_out.expert_ids.to_vector(), std::vector<float>({0, 1}));
}

TEST(MoeRouter, NegativeBiasNeverSelectsAMaskedGroupExpert) {
  // Every s = 0.5. Biased scores: group 0 = {1.5, 1.5, -2.5, -2.5} (top-2 sum 3.0) wins over
  // group 1 = {0.1 x 4} (0.2). k = 3 must take expert 2 (b = -2.5) from the kept group; a 0.0
  // fill of the masked group (HF's) would pick expert 4 instead (§11 item 5).
  Tensor logits = Tensor::zeros({1, 8}, DType::kF32);
  Tensor bias = Tensor::from_floats({1.0f, 1.0f, -3.0f, -3.0f, -0.4f, -0.4f, -0.4f, -0.4f}, {8}, DType::kF32);
  RouterOutputs o = route(logits, bias, two_groups_of_four(3));
  EXPECT_EQ(o.expert_ids.to_vector(), std::vector<float>({0, 1, 2}));
}

TEST(MoeRouter, V3WeightsAreUnbiasedScoresSummingToScalingFactor) {
  std::mt19937_64 rng(46);
  Tensor logits = random_tensor({16, 256}, DType::kF32, rng, 2.0f);
  Tensor bias = random_tensor({256}, DType::kF32, rng, 1.0f);  // large enough to reorder experts
  RouterOutputs o = route(logits, bias, v3());
  for (int64_t i = 0; i < 16; ++i) {
    double sum = 0.0;
    const float* w = o.weights.data<float>() + i * 8;
    const int32_t* ids = o.expert_ids.data<int32_t>() + i * 8;
    for (int j = 0; j < 8; ++j) sum += w[j];
    EXPECT_NEAR(sum, 2.5, 2.5 * 1e-6);  // eight fp32 roundings
    // Weight ratios are ratios of the unbiased sigmoid scores.
    const double s0 = 1.0 / (1.0 + std::exp(-logits.data<float>()[i * 256 + ids[0]]));
    for (int j = 1; j < 8; ++j) {
      const double sj = 1.0 / (1.0 + std::exp(-logits.data<float>()[i * 256 + ids[j]]));
      EXPECT_NEAR(w[j] / w[0], sj / s0, 1e-5 * sj / s0);
    }
  }
}

TEST(MoeRouter, TiesGoToLowerIndices) {
  Tensor flat = Tensor::zeros({1, 16}, DType::kF32);
  RouterParams greedy = v2_lite();
  greedy.top_k = 3;
  EXPECT_EQ(route(flat, Tensor(), greedy).expert_ids.to_vector(), std::vector<float>({0, 1, 2}));
  RouterParams grouped = v3();  // 16 experts in 8 groups of 2, 4 groups kept: groups 0..3
  grouped.top_k = 8;
  EXPECT_EQ(route(flat, Tensor::zeros({16}, DType::kF32), grouped).expert_ids.to_vector(),
            std::vector<float>({0, 1, 2, 3, 4, 5, 6, 7}));
}

// A row whose slot is negative (a decode graph's padding row) is routed by the logits of row
// i mod R, R the rows with a slot: its ids and weights equal that row's bit for bit, every other
// row's are those of the routing without slots. A graph's layout (3 real rows, then padding: rows
// 3..6 as rows 0, 1, 2, 0) and a scattered one (the rule holds as stated even where row i mod R is
// itself padding). V2-Lite's softmax and V3's noaux_tc.
TEST(MoeRouter, PaddingRowsAreRoutedAsRealRows) {
  std::mt19937_64 rng(50);
  for (const auto& [p0, e] : std::vector<std::pair<RouterParams, int64_t>>{{v2_lite(), 64}, {v3(), 256}}) {
    for (const std::vector<int64_t>& slots : {std::vector<int64_t>{4, 9, 2, -1, -1, -1, -1},
                                              std::vector<int64_t>{-1, 5, -1, 7, -1, 9, -1}}) {
      const auto t = static_cast<int64_t>(slots.size()), k = p0.top_k;
      const int64_t real = std::count_if(slots.begin(), slots.end(), [](int64_t s) { return s >= 0; });
      const Tensor logits = random_tensor({t, e}, DType::kF32, rng);
      const Tensor bias =
          p0.method == RouterTopkMethod::kNoAuxTc ? random_tensor({e}, DType::kF32, rng, 0.1f) : Tensor();
      RouterParams p = p0;
      p.row_slots = Tensor::empty({t}, DType::kI64);
      std::copy(slots.begin(), slots.end(), p.row_slots.data<int64_t>());
      const RouterOutputs plain = route(logits, bias, p0), padded = route(logits, bias, p);
      for (int64_t i = 0; i < t; ++i) {
        const int64_t src = slots[static_cast<size_t>(i)] < 0 ? i % real : i;
        EXPECT_EQ(std::memcmp(padded.expert_ids.data<int32_t>() + i * k,
                              plain.expert_ids.data<int32_t>() + src * k, static_cast<size_t>(k) * 4), 0)
            << "row " << i;
        EXPECT_EQ(std::memcmp(padded.weights.data<float>() + i * k, plain.weights.data<float>() + src * k,
                              static_cast<size_t>(k) * 4), 0)
            << "row " << i;
      }
    }
  }
}

TEST(MoeRouter, RejectsInconsistentParams) {
  Tensor logits = Tensor::zeros({2, 16}, DType::kF32);
  RouterOutputs o{Tensor::empty({2, 8}, DType::kF32), Tensor::empty({2, 8}, DType::kI32)};
  RouterParams p = v3();
  EXPECT_THROW(moe_route_cpu(logits, Tensor(), p, o), Error);  // noaux_tc without its bias
  p.n_group = 3;
  EXPECT_THROW(moe_route_cpu(logits, Tensor::zeros({16}, DType::kF32), p, o), Error);  // 16 % 3
  RouterParams q = v2();  // 16 experts, 8 groups of 2, keep 3: at most 6 selectable
  q.top_k = 8;
  EXPECT_THROW(moe_route_cpu(logits, Tensor(), q, o), Error);
  RouterParams g = v2_lite();
  g.top_k = 8;
  EXPECT_THROW(moe_route_cpu(logits, Tensor::zeros({16}, DType::kF32), g, o), Error);  // bias unused
}

TEST(MoeDispatch, RoutedMlpThroughGroupingMatchesNaive) {
  // The flow of moe_dispatch.h's note: route, group by expert, gather, run each expert on its
  // slice, combine into y (which already holds a stand-in for the shared experts' output).
  std::mt19937_64 rng(47);
  const int64_t t = 10, h = 32, inter = 16, e = 8;
  RouterParams p = v3();
  p.n_group = 4;
  p.topk_group = 2;
  p.top_k = 3;
  Tensor m = random_tensor({t, h}, DType::kF32, rng);
  Tensor logits = random_tensor({t, e}, DType::kF32, rng);
  Tensor bias = random_tensor({e}, DType::kF32, rng, 0.1f);
  RouterOutputs r = route(logits, bias, p);
  std::vector<Tensor> gate_up, down;  // per expert: [2·I, H] and [H, I]
  for (int64_t i = 0; i < e; ++i) {
    gate_up.push_back(random_tensor({2 * inter, h}, DType::kBF16, rng, 0.2f));
    down.push_back(random_tensor({h, inter}, DType::kBF16, rng, 0.2f));
  }
  MoeGrouping grouping{poisoned({e + 1}, DType::kI32), poisoned({t * 3}, DType::kI32), poisoned({t * 3}, DType::kI32)};
  moe_group_by_expert_cpu(r.expert_ids, e, grouping);
  const int32_t* offsets = grouping.expert_offsets.data<int32_t>();
  EXPECT_EQ(offsets[0], 0);
  EXPECT_EQ(offsets[e], t * 3);
  for (int64_t pos = 0; pos < t * 3; ++pos) {
    const int32_t pair = grouping.sorted_pairs.data<int32_t>()[pos];
    ASSERT_EQ(grouping.sorted_tokens.data<int32_t>()[pos], pair / 3);
    const int32_t expert = r.expert_ids.data<int32_t>()[pair];
    ASSERT_TRUE(offsets[expert] <= pos && pos < offsets[expert + 1]);
    if (pos > offsets[expert]) {
      ASSERT_LT(grouping.sorted_pairs.data<int32_t>()[pos - 1], pair);  // stable: token order
    }
  }

  Tensor gathered = Tensor::empty({t * 3, h}, DType::kF32);
  embedding_cpu(grouping.sorted_tokens, m, gathered);
  Tensor expert_out = poisoned({t * 3, h}, DType::kF32);
  for (int64_t i = 0; i < e; ++i) {
    const int64_t rows = offsets[i + 1] - offsets[i];
    if (rows == 0) continue;
    Tensor x = gathered.slice(offsets[i], offsets[i + 1]);
    Tensor gu = Tensor::empty({rows, 2 * inter}, DType::kF32), act = Tensor::empty({rows, inter}, DType::kF32);
    linear_cpu(x, gate_up[i], gu);
    silu_mul_cpu(gu, act);
    Tensor dst = expert_out.slice(offsets[i], offsets[i + 1]);
    linear_cpu(act, down[i], dst);
  }
  testing::expect_all_written(expert_out);
  Tensor y = random_tensor({t, h}, DType::kF32, rng);
  std::vector<double> want = to_doubles(y);
  moe_combine_cpu(expert_out, grouping.sorted_pairs, r.weights, y);

  const auto md = to_doubles(m);
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      const int32_t ex = r.expert_ids.data<int32_t>()[i * 3 + j];
      const double w = r.weights.data<float>()[i * 3 + j];
      const auto gu = to_doubles(gate_up[ex]), dn = to_doubles(down[ex]);
      std::vector<double> act(inter);
      for (int64_t c = 0; c < inter; ++c) {
        double g = 0.0, u = 0.0;
        for (int64_t k = 0; k < h; ++k) {
          g += gu[c * h + k] * md[i * h + k];
          u += gu[(inter + c) * h + k] * md[i * h + k];
        }
        act[c] = g / (1.0 + std::exp(-g)) * u;
      }
      for (int64_t o = 0; o < h; ++o) {
        double acc = 0.0;
        for (int64_t c = 0; c < inter; ++c) acc += dn[o * inter + c] * act[c];
        want[i * h + o] += w * acc;
      }
    }
  }
  // Two fp32 GEMMs of 32 and 16 terms and a 3-term weighted sum: ~1e-6 of the output scale.
  EXPECT_LT(testing::max_rel_error(y, want), 1e-5);
}

// moe_experts_token_rows on the CPU (the T token rows and sorted_tokens in place of the gathered
// rows) is moe_experts_cpu on the rows x[sorted_tokens[r]], bit for bit: 7 tokens routed top-3 of 8
// experts, stacked bf16 weights; the CPU never takes that path in the model.
TEST(MoeDispatch, ExpertsOnTokenRowsAreExpertsOnGatheredRows) {
  std::mt19937_64 rng(49);
  const int64_t t = 7, h = 64, inter = 32, e = 8, k = 3;
  RouterParams p = v2_lite();
  p.top_k = k;
  const Tensor x = random_tensor({t, h}, DType::kF32, rng);
  const RouterOutputs r = route(random_tensor({t, e}, DType::kF32, rng), Tensor(), p);
  MoeGrouping grouping{poisoned({e + 1}, DType::kI32), poisoned({t * k}, DType::kI32), poisoned({t * k}, DType::kI32)};
  moe_group_by_expert_cpu(r.expert_ids, e, grouping);
  const ExpertWeights w{random_tensor({e, 2 * inter, h}, DType::kBF16, rng, 0.2f),
                        random_tensor({e, h, inter}, DType::kBF16, rng, 0.2f), {}, {}};
  Tensor gathered = Tensor::empty({t * k, h}, DType::kF32);
  embedding_cpu(grouping.sorted_tokens, x, gathered);
  Tensor want = poisoned({t * k, h}, DType::kF32), got = poisoned({t * k, h}, DType::kF32), unused;
  moe_experts_cpu(gathered, grouping.expert_offsets, w, ActQuantParams{}, want);
  moe_experts_token_rows(x, Fp8Activations{}, grouping.sorted_tokens, grouping.expert_offsets, w, ActQuantParams{},
                         unused, got);
  testing::expect_all_written(want);
  EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0);
  EXPECT_FALSE(moe_experts_reads_token_rows(Device::kCPU, t, t * k, w));
}

// moe_route_and_gather_cpu is moe_route_cpu then moe_group_and_gather_cpu, output for output, at
// V2-Lite's (top-6 of 64, H 2048) and V3's (noaux_tc top-8 of 256, H 7168) decode shapes; without
// `gathered` (through the dispatch) the same routing and grouping.
TEST(MoeDispatch, RouteAndGatherIsRouteThenGroupAndGather) {
  std::mt19937_64 rng(48);
  const std::vector<std::tuple<RouterParams, int64_t, int64_t>> shapes{{v2_lite(), 64, 2048}, {v3(), 256, 7168}};
  for (const auto& [p, e, h] : shapes) {
    const int64_t t = 3, k = p.top_k;
    const Tensor logits = random_tensor({t, e}, DType::kF32, rng);
    const bool noaux = p.method == RouterTopkMethod::kNoAuxTc;
    const Tensor bias = noaux ? random_tensor({e}, DType::kF32, rng, 0.05f) : Tensor();
    const Tensor m = random_tensor({t, h}, DType::kF32, rng);
    auto poisoned_grouping = [&] {
      return MoeGrouping{poisoned({e + 1}, DType::kI32), poisoned({t * k}, DType::kI32), poisoned({t * k}, DType::kI32)};
    };
    MoeRouteGatherOutputs got{{poisoned({t, k}, DType::kF32), poisoned({t, k}, DType::kI32)}, poisoned_grouping(),
                              poisoned({t * k, h}, DType::kF32)};
    moe_route_and_gather_cpu(logits, bias, p, m, got);
    const RouterOutputs want = route(logits, bias, p);
    MoeGrouping grouping = poisoned_grouping();
    Tensor gathered = poisoned({t * k, h}, DType::kF32);
    moe_group_and_gather_cpu(want.expert_ids, e, m, grouping, gathered);
    EXPECT_EQ(got.route.weights.to_vector(), want.weights.to_vector());
    EXPECT_EQ(got.route.expert_ids.to_vector(), want.expert_ids.to_vector());
    EXPECT_EQ(got.grouping.expert_offsets.to_vector(), grouping.expert_offsets.to_vector());
    EXPECT_EQ(got.grouping.sorted_pairs.to_vector(), grouping.sorted_pairs.to_vector());
    EXPECT_EQ(got.grouping.sorted_tokens.to_vector(), grouping.sorted_tokens.to_vector());
    EXPECT_EQ(got.gathered.to_vector(), gathered.to_vector());
    MoeRouteGatherOutputs grouped_only{{poisoned({t, k}, DType::kF32), poisoned({t, k}, DType::kI32)},
                                       poisoned_grouping(), Tensor()};
    moe_route_and_gather(logits, bias, p, m, grouped_only);
    EXPECT_EQ(grouped_only.route.weights.to_vector(), want.weights.to_vector());
    EXPECT_EQ(grouped_only.route.expert_ids.to_vector(), want.expert_ids.to_vector());
    EXPECT_EQ(grouped_only.grouping.expert_offsets.to_vector(), grouping.expert_offsets.to_vector());
    EXPECT_EQ(grouped_only.grouping.sorted_pairs.to_vector(), grouping.sorted_pairs.to_vector());
    EXPECT_EQ(grouped_only.grouping.sorted_tokens.to_vector(), grouping.sorted_tokens.to_vector());
  }
}

// moe_combine_add_rms_norm_cpu is moe_combine_cpu (onto shared_out, or onto zeros without shared
// experts) then add_rms_norm_cpu, bit for bit, and leaves shared_out as it was; V2-Lite's decode
// shape (k 6 of 64, H 2048), out poisoned first.
TEST(MoeDispatch, CombineAddRmsNormIsCombineThenAddRmsNorm) {
  std::mt19937_64 rng(49);
  const int64_t t = 3, k = 6, e = 64, h = 2048;
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t j = 0; j < k; ++j) ids.push_back(static_cast<int32_t>((i * 7 + j * 11) % e));
  }
  MoeGrouping grouping{Tensor::empty({e + 1}, DType::kI32), Tensor::empty({t * k}, DType::kI32),
                       Tensor::empty({t * k}, DType::kI32)};
  moe_group_by_expert_cpu(i32_tensor(ids, {t, k}), e, grouping);
  const Tensor expert_out = random_tensor({t * k, h}, DType::kF32, rng);
  const Tensor weights = random_tensor({t, k}, DType::kF32, rng, 0.3f);
  const Tensor residual = random_tensor({t, h}, DType::kF32, rng, 8.0f);
  const Tensor norm = random_tensor({h}, DType::kBF16, rng, 0.5f);
  for (const bool with_shared : {true, false}) {
    const Tensor shared = with_shared ? random_tensor({t, h}, DType::kF32, rng, 0.5f) : Tensor();
    const std::vector<float> shared_before = with_shared ? shared.to_vector() : std::vector<float>();
    Tensor y = with_shared ? shared.clone() : Tensor::zeros({t, h}, DType::kF32);
    moe_combine_cpu(expert_out, grouping.sorted_pairs, weights, y);
    Tensor want_residual = residual.clone();
    Tensor want = poisoned({t, h}, DType::kF32);
    add_rms_norm_cpu(y, want_residual, norm, 1e-6f, want);

    Tensor got_residual = residual.clone();
    Tensor got = poisoned({t, h}, DType::kF32);
    moe_combine_add_rms_norm({expert_out, grouping.sorted_pairs, weights, shared}, got_residual, norm, 1e-6f, got);
    EXPECT_EQ(got_residual.to_vector(), want_residual.to_vector()) << "shared " << with_shared;
    EXPECT_EQ(got.to_vector(), want.to_vector()) << "shared " << with_shared;
    if (with_shared) {
      EXPECT_EQ(shared.to_vector(), shared_before);
    }
  }
}

TEST(MoeDispatch, RejectsBadIdsAndPermutations) {
  MoeGrouping g{Tensor::empty({5}, DType::kI32), Tensor::empty({4}, DType::kI32), Tensor::empty({4}, DType::kI32)};
  EXPECT_THROW(moe_group_by_expert_cpu(i32_tensor({0, 1, 4, 2}, {2, 2}), 4, g), Error);
  Tensor y = Tensor::zeros({2, 3}, DType::kF32);
  EXPECT_THROW(moe_combine_cpu(Tensor::zeros({4, 3}, DType::kF32), i32_tensor({0, 1, 1, 3}, {4}),
                               Tensor::zeros({2, 2}, DType::kF32), y),
               Error);
}

}  // namespace
}  // namespace mlaserve::ops
