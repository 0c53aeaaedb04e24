// moe_group_by_expert_cuda and moe_combine_cuda (through the dispatch) against the CPU
// references, at DeepSeek's shapes: 64 experts with k = 6 (V2-Lite), 160 with 6 (V2), 256 with 8
// (V3); T from 1 to 10000, uniform and skewed (hot experts) routing; hidden 2048 and 7168 for the
// combine.
//
// The grouping is a stable counting sort: offsets, sorted pairs and sorted tokens must equal the
// CPU's exactly (outputs poisoned with -1 first). Ids outside [0, E) are checked against a plain
// std::stable_sort with such ids last. The Large* cases run both kernels (the one-CTA sort and
// the multi-CTA sort, moe_dispatch_kernels.h) at prefill sizes: V2-Lite's 1600 tokens (9600
// pairs), V3's 8192 (65536), 10000 tokens of top-8 (80000 pairs: two chunks a CTA), token counts
// that are multiples of nothing, routings where 7 in 8 pairs go to one expert, and a few ids
// outside [0, E).
//
// The combine adds k weighted bf16 rows to the bf16 y in fp32, in j order, and rounds once; the
// CPU does the same in fp32 on the same values (the GPU may fuse multiply-adds: a few fp32 ulps
// of the terms' magnitudes). Per element: |got - want| <= 2^-8 |want| + 1e-6 (|y| + Σ_j |w_j x_j|).
// With an f32 y (the tensor-parallel partial sum, f32 values bf16 cannot hold) nothing is
// rounded: |got - want| <= 1e-6 (|y| + Σ_j |w_j x_j|), which a bf16 store (2^-9 relative) fails.
// The two combine kernels (scan and rows) must agree bit for bit: the same expressions in the
// same order; the Large* cases check it at prefill sizes, and with entries of sorted_pairs that
// name no pair (those pairs add nothing, in both).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/cuda/moe_dispatch_kernels.h"
#include "ops/moe_dispatch.h"

namespace mlaserve::ops {
namespace {

using testing::bf16_bits;
using testing::count_nan;
using testing::CudaOpTest;
using testing::i32_tensor;
using testing::poisoned_gpu;
using testing::random_tensor;

// [t, k] distinct experts per token; with `skew`, 3 in 4 picks come from the first 4 experts.
Tensor route_ids(int64_t t, int64_t k, int64_t e, bool skew, std::mt19937_64& rng) {
  std::vector<int32_t> ids;
  std::uniform_int_distribution<int32_t> any(0, static_cast<int32_t>(e - 1)), hot(0, 3), coin(0, 3);
  for (int64_t i = 0; i < t; ++i) {
    std::vector<int32_t> chosen;
    while (static_cast<int64_t>(chosen.size()) < k) {
      const int32_t id = skew && coin(rng) != 0 ? hot(rng) : any(rng);
      if (std::find(chosen.begin(), chosen.end(), id) == chosen.end()) chosen.push_back(id);
    }
    ids.insert(ids.end(), chosen.begin(), chosen.end());
  }
  return i32_tensor(ids, {t, k});
}

// [t, k] ids where 7 in 8 picks are expert `hot` and the rest uniform, repeats within a token
// allowed (the sort takes any ids): most pairs go to one expert.
std::vector<int32_t> hot_expert_ids(int64_t t, int64_t k, int64_t e, int32_t hot, std::mt19937_64& rng) {
  std::uniform_int_distribution<int32_t> any(0, static_cast<int32_t>(e - 1)), coin(0, 7);
  std::vector<int32_t> ids(static_cast<size_t>(t * k));
  for (int32_t& id : ids) id = coin(rng) != 0 ? hot : any(rng);
  return ids;
}

// `count` random entries of ids set outside [0, E): -1, E, E + 5 and INT32_MIN in turn.
void spoil_ids(std::vector<int32_t>& ids, int64_t e, int count, std::mt19937_64& rng) {
  const int32_t outside[] = {-1, static_cast<int32_t>(e), static_cast<int32_t>(e + 5),
                             std::numeric_limits<int32_t>::min()};
  std::uniform_int_distribution<size_t> at(0, ids.size() - 1);
  for (int i = 0; i < count; ++i) ids[at(rng)] = outside[i % 4];
}

// The stable grouping of any ids, those outside [0, E) after every expert (bucket E), by
// std::stable_sort: the reference where the CPU op rejects the ids.
struct Grouped {
  std::vector<int32_t> offsets, pairs, tokens;  // [E + 1], [P], [P]
};
Grouped stable_grouping(const std::vector<int32_t>& ids, int64_t k, int64_t e) {
  auto bucket = [&](int32_t p) { return ids[p] >= 0 && ids[p] < e ? ids[p] : static_cast<int32_t>(e); };
  Grouped g;
  g.pairs.resize(ids.size());
  std::iota(g.pairs.begin(), g.pairs.end(), 0);
  std::stable_sort(g.pairs.begin(), g.pairs.end(), [&](int32_t a, int32_t b) { return bucket(a) < bucket(b); });
  g.offsets.assign(static_cast<size_t>(e + 1), 0);  // offsets[b]: the pairs in buckets below b
  for (int32_t p : g.pairs) {
    g.tokens.push_back(static_cast<int32_t>(p / k));
    for (int32_t b = bucket(p) + 1; b <= e; ++b) ++g.offsets[b];
  }
  return g;
}

MoeGrouping poisoned_grouping(int64_t pairs, int64_t e) {
  return {poisoned_gpu({e + 1}, DType::kI32), poisoned_gpu({pairs}, DType::kI32), poisoned_gpu({pairs}, DType::kI32)};
}

std::vector<int32_t> ints(const Tensor& host) {
  const int32_t* p = host.data<int32_t>();
  return {p, p + host.numel()};
}

class MoeDispatchCuda : public CudaOpTest {
 protected:
  void check_grouping(int64_t t, int64_t k, int64_t e, bool skew, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const Tensor ids = route_ids(t, k, e, skew, rng);
    MoeGrouping want{Tensor::empty({e + 1}, DType::kI32), Tensor::empty({t * k}, DType::kI32),
                     Tensor::empty({t * k}, DType::kI32)};
    moe_group_by_expert_cpu(ids, e, want);
    MoeGrouping got = poisoned_grouping(t * k, e);
    moe_group_by_expert(ids.to(Device::kCUDA), e, got, stream());
    EXPECT_EQ(testing::mismatches(ints(to_host(got.expert_offsets)), ints(want.expert_offsets)), 0);
    EXPECT_EQ(testing::mismatches(ints(to_host(got.sorted_pairs)), ints(want.sorted_pairs)), 0);
    EXPECT_EQ(testing::mismatches(ints(to_host(got.sorted_tokens)), ints(want.sorted_tokens)), 0);
  }

  // moe_group_and_gather: the grouping and the gathered rows must equal the CPU's bit for bit
  // (an integer sort and a copy); gathered is poisoned first.
  void check_group_gather(int64_t t, int64_t k, int64_t e, int64_t h, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const Tensor ids = route_ids(t, k, e, false, rng);
    const Tensor x = random_tensor({t, h}, DType::kBF16, rng);
    MoeGrouping want{Tensor::empty({e + 1}, DType::kI32), Tensor::empty({t * k}, DType::kI32),
                     Tensor::empty({t * k}, DType::kI32)};
    Tensor want_rows = Tensor::empty({t * k, h}, DType::kF32);  // the bf16 rows, exact in f32
    moe_group_and_gather_cpu(ids, e, x, want, want_rows);
    MoeGrouping got = poisoned_grouping(t * k, e);
    Tensor rows = poisoned_gpu({t * k, h}, DType::kBF16);
    moe_group_and_gather(ids.to(Device::kCUDA), e, x.to(Device::kCUDA), got, rows, stream());
    const std::string where = "T " + std::to_string(t) + " k " + std::to_string(k) + " H " + std::to_string(h);
    EXPECT_EQ(testing::mismatches(ints(to_host(got.expert_offsets)), ints(want.expert_offsets)), 0) << where;
    EXPECT_EQ(testing::mismatches(ints(to_host(got.sorted_pairs)), ints(want.sorted_pairs)), 0) << where;
    EXPECT_EQ(testing::mismatches(ints(to_host(got.sorted_tokens)), ints(want.sorted_tokens)), 0) << where;
    EXPECT_EQ(testing::mismatches(to_host(rows).to_vector(), want_rows.to_vector()), 0)
        << where << ": gathered rows differ (or were left poisoned)";
  }

  // Both grouping kernels and the op's own choice on `ids` ([t, k], any values) against
  // stable_grouping, exactly; with every id in [0, E), stable_grouping against the CPU op too.
  void check_large_grouping(const std::vector<int32_t>& ids, int64_t t, int64_t k, int64_t e) {
    const std::string where = "T " + std::to_string(t) + " k " + std::to_string(k) + " E " + std::to_string(e);
    const Grouped want = stable_grouping(ids, k, e);
    const Tensor ids_host = i32_tensor(ids, {t, k});
    if (std::all_of(ids.begin(), ids.end(), [&](int32_t id) { return id >= 0 && id < e; })) {
      MoeGrouping cpu{Tensor::empty({e + 1}, DType::kI32), Tensor::empty({t * k}, DType::kI32),
                      Tensor::empty({t * k}, DType::kI32)};
      moe_group_by_expert_cpu(ids_host, e, cpu);
      EXPECT_EQ(testing::mismatches(ints(cpu.expert_offsets), want.offsets), 0) << where << ": the reference";
      EXPECT_EQ(testing::mismatches(ints(cpu.sorted_pairs), want.pairs), 0) << where << ": the reference";
    }
    const Tensor ids_gpu = ids_host.to(Device::kCUDA);
    for (MoeGroupKernel kernel : {MoeGroupKernel::kAuto, MoeGroupKernel::kOneCta, MoeGroupKernel::kMultiCta}) {
      MoeGrouping got = poisoned_grouping(t * k, e);
      moe_group_by_expert_cuda(ids_gpu, e, got, cuda_stream(), kernel);
      const std::string at = where + " " + group_kernel_name(kernel);
      EXPECT_EQ(testing::mismatches(ints(to_host(got.expert_offsets)), want.offsets), 0) << at;
      EXPECT_EQ(testing::mismatches(ints(to_host(got.sorted_pairs)), want.pairs), 0) << at;
      EXPECT_EQ(testing::mismatches(ints(to_host(got.sorted_tokens)), want.tokens), 0) << at;
    }
  }

  // moe_combine_cuda's scan and rows kernels on the same inputs must give the same bytes. With
  // `unnamed` > 0, that many random entries of sorted_pairs are -1 (naming no pair): those pairs
  // add nothing, in both kernels (the rows kernel's inverse workspace is not cleared).
  void check_combine_kernels_agree(int64_t t, int64_t k, int64_t e, int64_t h, uint64_t seed, DType y_dtype,
                                   int unnamed = 0) {
    std::mt19937_64 rng(seed);
    MoeGrouping grouping{Tensor::empty({e + 1}, DType::kI32), Tensor::empty({t * k}, DType::kI32),
                         Tensor::empty({t * k}, DType::kI32)};
    moe_group_by_expert_cpu(route_ids(t, k, e, false, rng), e, grouping);
    std::vector<int32_t> sorted = ints(grouping.sorted_pairs);
    std::uniform_int_distribution<size_t> at(0, sorted.size() - 1);
    for (int i = 0; i < unnamed; ++i) sorted[at(rng)] = -1;
    const Tensor pairs_gpu = i32_tensor(sorted, {t * k}).to(Device::kCUDA);
    const Tensor expert_out = random_tensor({t * k, h}, DType::kBF16, rng).to(Device::kCUDA);
    const Tensor y0 = random_tensor({t, h}, y_dtype, rng, 0.5f);
    Tensor weights = Tensor::empty({t, k}, DType::kF32);
    std::uniform_real_distribution<float> w(0.02f, 0.6f);
    for (int64_t i = 0; i < t * k; ++i) weights.data<float>()[i] = w(rng);
    const Tensor weights_gpu = weights.to(Device::kCUDA);
    Tensor y_scan = y0.to(Device::kCUDA), y_rows = y0.to(Device::kCUDA);
    moe_combine_cuda(expert_out, pairs_gpu, weights_gpu, y_scan, cuda_stream(), MoeCombineKernel::kScan);
    moe_combine_cuda(expert_out, pairs_gpu, weights_gpu, y_rows, cuda_stream(), MoeCombineKernel::kRows);
    const std::string where = "T " + std::to_string(t) + " k " + std::to_string(k) + " H " + std::to_string(h) + " y " +
                              std::string(dtype_name(y_dtype)) + ", " + std::to_string(unnamed) + " unnamed pairs";
    EXPECT_EQ(testing::mismatches(bytes(to_host(y_rows)), bytes(to_host(y_scan))), 0)
        << where << ": the rows kernel differs from the scan kernel";
  }

  // moe_combine with a scope (MoeCombineScope): the rows of experts [e0, e1) only (their sorted
  // positions [offsets[e0], offsets[e1])), the others' rows NaN (never read); without accumulate,
  // y starts as NaN (never read either). Both kernels against the CPU: the same fp32 sums in j
  // order, 1e-5 relative L2 (f32 y) or bf16 rounding (2^-8 relative L2) apart at most.
  void check_combine_scope(int64_t t, int64_t k, int64_t e, int64_t h, int64_t e0, int64_t e1, bool accumulate,
                           uint64_t seed, DType y_dtype) {
    std::mt19937_64 rng(seed);
    MoeGrouping grouping{Tensor::empty({e + 1}, DType::kI32), Tensor::empty({t * k}, DType::kI32),
                         Tensor::empty({t * k}, DType::kI32)};
    moe_group_by_expert_cpu(route_ids(t, k, e, false, rng), e, grouping);
    Tensor expert_out = random_tensor({t * k, h}, DType::kBF16, rng);
    const int32_t* offsets = grouping.expert_offsets.data<int32_t>();
    for (int64_t pos = 0; pos < t * k; ++pos) {
      if (pos >= offsets[e0] && pos < offsets[e1]) continue;
      for (int64_t c = 0; c < h; ++c) expert_out.data<bfloat16>()[pos * h + c].bits = 0x7FC0;  // NaN
    }
    Tensor y0 = random_tensor({t, h}, y_dtype, rng, 0.5f);
    Tensor weights = Tensor::empty({t, k}, DType::kF32);
    std::uniform_real_distribution<float> w(0.02f, 0.6f);
    for (int64_t i = 0; i < t * k; ++i) weights.data<float>()[i] = w(rng);
    MoeCombineScope cpu_scope{grouping.expert_offsets.slice(e0, e1 + 1), accumulate};
    Tensor want = y0.to_f32();
    moe_combine_cpu(expert_out.to_f32(), grouping.sorted_pairs, weights, want, cpu_scope);
    if (!accumulate) y0.fill_bytes(0xFF);  // NaN in either dtype: must not be read
    // The scan kernel also with early_inputs (its first token's positions read before its wait).
    using Run = std::pair<MoeCombineKernel, bool>;
    for (const auto& [kernel, early] : {Run{MoeCombineKernel::kScan, false}, Run{MoeCombineKernel::kScan, true},
                                        Run{MoeCombineKernel::kRows, false}}) {
      const MoeCombineScope gpu_scope{cpu_scope.held_offsets.to(Device::kCUDA), accumulate, early};
      Tensor y = y0.to(Device::kCUDA);
      moe_combine_cuda(expert_out.to(Device::kCUDA), grouping.sorted_pairs.to(Device::kCUDA),
                       weights.to(Device::kCUDA), y, cuda_stream(), kernel, gpu_scope);
      const std::vector<float> got = to_host(y).to_vector();
      const std::string where = std::string(combine_kernel_name(kernel)) + (early ? " (early inputs)" : "") +
                                ", experts [" + std::to_string(e0) + ", " + std::to_string(e1) + ") of " +
                                std::to_string(e) + (accumulate ? "" : ", written");
      ASSERT_EQ(count_nan(got), 0) << where;
      const std::vector<double> g(got.begin(), got.end()), x(want.data<float>(), want.data<float>() + want.numel());
      EXPECT_LT(testing::rel_l2_error(g, x), y_dtype == DType::kF32 ? 1e-5 : 1.0 / 256) << where;
    }
  }

  static std::vector<uint8_t> bytes(const Tensor& host) {
    std::vector<uint8_t> b(host.nbytes());
    std::memcpy(b.data(), host.raw(), b.size());
    return b;
  }

  void check_combine(int64_t t, int64_t k, int64_t e, int64_t h, uint64_t seed, DType y_dtype = DType::kBF16) {
    std::mt19937_64 rng(seed);
    const Tensor ids = route_ids(t, k, e, false, rng);
    MoeGrouping grouping{Tensor::empty({e + 1}, DType::kI32), Tensor::empty({t * k}, DType::kI32),
                         Tensor::empty({t * k}, DType::kI32)};
    moe_group_by_expert_cpu(ids, e, grouping);
    const Tensor expert_out = random_tensor({t * k, h}, DType::kBF16, rng);
    const Tensor y0 = random_tensor({t, h}, y_dtype, rng, 0.5f);
    Tensor weights = Tensor::empty({t, k}, DType::kF32);
    std::uniform_real_distribution<float> w(0.02f, 0.6f);
    for (int64_t i = 0; i < t * k; ++i) weights.data<float>()[i] = w(rng);
    Tensor want = y0.to_f32();
    moe_combine_cpu(expert_out.to_f32(), grouping.sorted_pairs, weights, want);

    Tensor y = y0.to(Device::kCUDA);
    moe_combine(expert_out.to(Device::kCUDA), grouping.sorted_pairs.to(Device::kCUDA), weights.to(Device::kCUDA), y,
                stream());
    const std::vector<float> got = to_host(y).to_vector(), expect = want.to_vector();
    ASSERT_EQ(count_nan(got), 0);

    // |y| + Σ_j |w_j x_j| per element, for the fp32 part of the bound.
    std::vector<float> magnitude = y0.to_vector();
    for (float& m : magnitude) m = std::abs(m);
    const std::vector<float> rows = expert_out.to_vector();
    const int32_t* sorted = grouping.sorted_pairs.data<int32_t>();
    for (int64_t pos = 0; pos < t * k; ++pos) {
      const int64_t token = sorted[pos] / k;
      const float wj = weights.data<float>()[sorted[pos]];
      for (int64_t c = 0; c < h; ++c) magnitude[token * h + c] += std::abs(wj * rows[pos * h + c]);
    }
    int64_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const double rounding = y_dtype == DType::kF32 ? 0.0 : std::ldexp(std::abs(expect[i]), -8);
      const double bound = rounding + 1e-6 * magnitude[i];
      bad += !(std::abs(static_cast<double>(got[i]) - expect[i]) <= bound) ? 1 : 0;
    }
    EXPECT_EQ(bad, 0) << "of " << got.size() << " elements off by more than bf16 rounding";
  }
};

TEST_F(MoeDispatchCuda, SmallGrouping) {
  check_grouping(3, 2, 8, false, 1);
  check_grouping(1, 8, 256, false, 2);
  check_grouping(40, 6, 64, true, 3);
}

TEST_F(MoeDispatchCuda, SmallGroupingIdsOutsideTheExpertsSortLast) {
  const int64_t e = 4;
  const std::vector<int32_t> ids{2, -1, 0, 4, 2, 1, 9, 0};
  MoeGrouping got = poisoned_grouping(8, e);
  moe_group_by_expert(i32_tensor(ids, {4, 2}).to(Device::kCUDA), e, got, stream());
  std::vector<int32_t> order(ids.size());
  std::iota(order.begin(), order.end(), 0);
  auto bucket = [&](int32_t p) { return ids[p] >= 0 && ids[p] < e ? ids[p] : static_cast<int32_t>(e); };
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return bucket(a) < bucket(b); });
  std::vector<int32_t> tokens;
  for (int32_t p : order) tokens.push_back(p / 2);
  EXPECT_EQ(ints(to_host(got.expert_offsets)), (std::vector<int32_t>{0, 2, 3, 5, 5}));
  EXPECT_EQ(ints(to_host(got.sorted_pairs)), order);
  EXPECT_EQ(ints(to_host(got.sorted_tokens)), tokens);
}

TEST_F(MoeDispatchCuda, SmallCombine) {
  check_combine(3, 2, 8, 64, 4);
  check_combine(5, 3, 8, 20, 5);  // width not a multiple of 8
}

TEST_F(MoeDispatchCuda, GroupingV3) {
  check_grouping(4096, 8, 256, false, 11);
  check_grouping(4096, 8, 256, true, 12);
  check_grouping(128, 8, 256, false, 13);
}

TEST_F(MoeDispatchCuda, GroupingV2AndV2Lite) {
  check_grouping(2000, 6, 160, false, 14);
  check_grouping(1500, 6, 64, true, 15);
}

TEST_F(MoeDispatchCuda, CombineV3Hidden) {
  check_combine(1, 8, 256, 7168, 21);
  check_combine(512, 8, 256, 7168, 22);
}

// A rank's experts under expert parallelism (EP: a share of the experts, the other rows never
// written), and a combine that writes y instead of accumulating (a tensor-parallel step's routed
// partial sum), at decode and prefill sizes (both kernels at each).
TEST_F(MoeDispatchCuda, CombineScope) {
  check_combine_scope(1, 8, 256, 7168, 32, 64, false, 60, DType::kF32);   // V3 TP8, rank 1
  check_combine_scope(8, 8, 256, 7168, 224, 256, false, 61, DType::kF32);
  check_combine_scope(64, 6, 64, 2048, 0, 32, true, 62, DType::kBF16);    // V2-Lite TP2, rank 0
  check_combine_scope(700, 6, 64, 2048, 32, 64, false, 63, DType::kBF16);
  check_combine_scope(5, 3, 8, 20, 0, 8, false, 64, DType::kF32);          // every expert, written; odd width
}

TEST_F(MoeDispatchCuda, CombineV2LiteHidden) { check_combine(2048, 6, 64, 2048, 23); }

// Decode batches (at most 2048 pairs) take the one-kernel combine, larger ones the inverse
// workspace and two kernels: both sides of the switch, at V2-Lite's (k 6, E 64, H 2048: 341 x 6 =
// 2046 and 342 x 6 = 2052 pairs) and V3's shapes (k 8, E 256, H 7168: 256 and 257 tokens).
TEST_F(MoeDispatchCuda, CombineDecodeBatches) {
  for (int64_t t : {1, 8, 64, 256, 341, 342}) check_combine(t, 6, 64, 2048, 40 + t);
  for (int64_t t : {1, 8, 64, 256, 257}) check_combine(t, 8, 256, 7168, 50 + t, DType::kF32);
}

// Up to 64 pairs the grouping CTA copies the rows itself, above that the gather is its own
// launch: both sides at V2-Lite's (k 6, H 2048: 10 x 6 = 60, 11 x 6 = 66 pairs) and V3's shapes
// (k 8, H 7168: 8 x 8 = 64, 9 x 8 = 72), and a width that is not a multiple of 8 (two launches).
TEST_F(MoeDispatchCuda, SmallGroupAndGather) {
  check_group_gather(3, 2, 8, 64, 71);
  check_group_gather(5, 3, 8, 20, 72);
}

TEST_F(MoeDispatchCuda, GroupAndGatherDecodeBatches) {
  for (int64_t t : {1, 8, 10, 11, 64}) check_group_gather(t, 6, 64, 2048, 80 + t);
  for (int64_t t : {1, 8, 9}) check_group_gather(t, 8, 256, 7168, 90 + t);
}

TEST_F(MoeDispatchCuda, SmallCombineF32Output) {
  check_combine(3, 2, 8, 64, 31, DType::kF32);
  check_combine(5, 3, 8, 20, 32, DType::kF32);  // width not a multiple of 8
}

TEST_F(MoeDispatchCuda, CombineF32OutputHidden) {
  check_combine(512, 8, 256, 7168, 33, DType::kF32);
  check_combine(2048, 6, 64, 2048, 34, DType::kF32);
}

// Prefill sizes: the one-CTA and the multi-CTA sorts and the op's choice must give the CPU's
// grouping. V2-Lite (k 6, E 64): either side of kGroupOneCtaMaxPairs (341 and 342 tokens: 2046 and
// 2052 pairs), a 1600-token chunk (9600 pairs), 1601 and 8192 tokens.
TEST_F(MoeDispatchCuda, LargeGroupingV2Lite) {
  for (int64_t t : {341, 342, 1600, 1601, 8192}) {
    std::mt19937_64 rng(300 + static_cast<uint64_t>(t));
    check_large_grouping(ints(route_ids(t, 6, 64, false, rng)), t, 6, 64);
  }
}

// V3 (k 8, E 256): 8192 tokens (65536 pairs: 64 CTAs of one chunk), 8191, and 10000 (80000 pairs:
// 40 CTAs of two chunks each); skewed toward four hot experts at 8192.
TEST_F(MoeDispatchCuda, LargeGroupingV3) {
  for (int64_t t : {8192, 8191, 10000}) {
    std::mt19937_64 rng(400 + static_cast<uint64_t>(t));
    check_large_grouping(ints(route_ids(t, 8, 256, false, rng)), t, 8, 256);
  }
  std::mt19937_64 rng(499);
  check_large_grouping(ints(route_ids(8192, 8, 256, true, rng)), 8192, 8, 256);
}

// 7 in 8 pairs to one expert (first, middle and last): one bucket far larger than a CTA's share.
TEST_F(MoeDispatchCuda, LargeGroupingOneHotExpert) {
  std::mt19937_64 rng(500);
  check_large_grouping(hot_expert_ids(1600, 6, 64, 0, rng), 1600, 6, 64);
  check_large_grouping(hot_expert_ids(1601, 6, 64, 63, rng), 1601, 6, 64);
  check_large_grouping(hot_expert_ids(8192, 8, 256, 131, rng), 8192, 8, 256);
}

// A few ids outside [0, E) sort after every expert, as in the one-CTA kernel.
TEST_F(MoeDispatchCuda, LargeGroupingIdsOutsideTheExperts) {
  std::mt19937_64 rng(600);
  std::vector<int32_t> v2l = ints(route_ids(1600, 6, 64, false, rng));
  spoil_ids(v2l, 64, 7, rng);
  check_large_grouping(v2l, 1600, 6, 64);
  std::vector<int32_t> v3 = ints(route_ids(10000, 8, 256, false, rng));
  spoil_ids(v3, 256, 13, rng);
  check_large_grouping(v3, 10000, 8, 256);
}

// The grouping and the row gather at prefill sizes (the multi-CTA sort, then embedding_cuda), and
// a width that is not a multiple of 8.
TEST_F(MoeDispatchCuda, LargeGroupAndGather) {
  check_group_gather(1600, 6, 64, 2048, 701);
  check_group_gather(1237, 8, 256, 7168, 702);
  check_group_gather(1601, 6, 64, 20, 703);
}

// The combine's rows kernel at prefill sizes against the CPU (bf16 and f32 y, the one-element
// path at width 20).
TEST_F(MoeDispatchCuda, LargeCombine) {
  check_combine(1600, 6, 64, 2048, 801);
  check_combine(1601, 6, 64, 2048, 802, DType::kF32);
  check_combine(1111, 8, 256, 7168, 803);
  check_combine(999, 6, 64, 20, 804);
}

// The rows kernel against the scan kernel, bit for bit: prefill sizes, decode sizes (the rows
// kernel is not their choice but must agree there too), the one-element path, and entries of
// sorted_pairs that name no pair.
TEST_F(MoeDispatchCuda, LargeCombineKernelsAgree) {
  check_combine_kernels_agree(1600, 6, 64, 2048, 901, DType::kBF16);
  check_combine_kernels_agree(1601, 6, 64, 2048, 902, DType::kF32);
  check_combine_kernels_agree(1111, 8, 256, 7168, 903, DType::kBF16);
  check_combine_kernels_agree(999, 6, 64, 20, 904, DType::kBF16);
  check_combine_kernels_agree(1, 6, 64, 2048, 905, DType::kBF16);
  check_combine_kernels_agree(8, 8, 256, 7168, 906, DType::kF32);
  check_combine_kernels_agree(400, 6, 64, 2048, 907, DType::kBF16, 48);
  check_combine_kernels_agree(400, 8, 256, 7168, 908, DType::kF32, 64);
}

}  // namespace
}  // namespace mlaserve::ops
