// greedy_sample_cuda and log_softmax_cuda against the CPU references on logits of DeepSeek's
// vocabularies (V3 129280, V2 102400): decode batches of 1 to 256 rows, coarse logits with many
// tied maxima, fully masked (-inf) rows. Outputs are poisoned first.
//
// Greedy is exact: the same token as greedy_sample_cpu (first maximum). log_softmax: the GPU
// does the CPU's operations (fp32 max, double Σ exp and log, one fp32 rounding of the
// normaliser, one fp32 subtraction) with the sum in another order, so the normaliser can differ
// by an fp32 ulp (2e-6 at ~30) and each output by that plus one rounding: 1e-5 absolute, as the
// CPU test allows against a double reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/sampling.h"

namespace mlaserve::ops {
namespace {

using testing::count_nan;
using testing::CudaOpTest;
using testing::poisoned_gpu;

// [b, v] logits, normal with `scale`; grid > 0 rounds them to multiples of 1/grid (ties); row
// `masked` (if in range) is all -inf.
Tensor make_logits(int64_t b, int64_t v, float scale, float grid, int64_t masked, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  Tensor logits = Tensor::empty({b, v}, DType::kF32);
  float* p = logits.data<float>();
  for (int64_t i = 0; i < b * v; ++i) {
    const float x = normal(rng);
    p[i] = i / v == masked ? -INFINITY : grid > 0.0f ? std::round(x * grid) / grid : x;
  }
  return logits;
}

class SamplingCuda : public CudaOpTest {
 protected:
  void check_greedy(const Tensor& logits) {
    const int64_t b = logits.dim(0);
    Tensor want = Tensor::empty({b}, DType::kI32);
    greedy_sample_cpu(logits, want);
    Tensor got = poisoned_gpu({b}, DType::kI32);
    greedy_sample_cuda(logits.to(Device::kCUDA), got, cuda_stream());
    const Tensor host = to_host(got);
    std::vector<int32_t> g(host.data<int32_t>(), host.data<int32_t>() + b);
    std::vector<int32_t> w(want.data<int32_t>(), want.data<int32_t>() + b);
    EXPECT_EQ(testing::mismatches(g, w), 0) << "of " << b << " rows";
  }

  void check_log_softmax(const Tensor& logits) {
    Tensor want = Tensor::empty(logits.shape(), DType::kF32);
    log_softmax_cpu(logits, want);
    Tensor got = poisoned_gpu(logits.shape(), DType::kF32);
    log_softmax_cuda(logits.to(Device::kCUDA), got, cuda_stream());
    const std::vector<float> g = to_host(got).to_vector(), w = want.to_vector();
    ASSERT_EQ(count_nan(g), 0) << "elements left unwritten";
    int64_t bad = 0;
    double worst = 0.0;
    for (size_t i = 0; i < g.size(); ++i) {
      const double err = std::abs(static_cast<double>(g[i]) - w[i]);
      worst = std::max(worst, err);
      bad += !(err <= 1e-5) ? 1 : 0;
    }
    testing::record_error("log_softmax_worst_abs_error", worst);
    EXPECT_EQ(bad, 0) << "of " << g.size() << " elements off by more than 1e-5";
  }
};

TEST_F(SamplingCuda, SmallGreedyTiesGoToLowestId) {
  check_greedy(Tensor::from_floats({0, 5, 5, 1, /**/ -1, -1, -1, -1, /**/ 2, 3, 9, 9}, {3, 4}, DType::kF32));
  check_greedy(make_logits(3, 1000, 1.0f, 1.0f, 1, 1));  // integer logits: ties at the max; row 1 all -inf
}

TEST_F(SamplingCuda, SmallLogSoftmax) { check_log_softmax(make_logits(3, 3000, 5.0f, 0.0f, -1, 2)); }

TEST_F(SamplingCuda, GreedyV3Vocabulary) {
  check_greedy(make_logits(1, 129280, 3.0f, 0.0f, -1, 11));
  check_greedy(make_logits(256, 129280, 3.0f, 0.0f, -1, 12));
  check_greedy(make_logits(64, 129280, 2.0f, 2.0f, 5, 13));
}

TEST_F(SamplingCuda, GreedyV2Vocabulary) { check_greedy(make_logits(100, 102400, 3.0f, 0.0f, -1, 14)); }

TEST_F(SamplingCuda, LogSoftmaxV3Vocabulary) { check_log_softmax(make_logits(16, 129280, 5.0f, 0.0f, -1, 21)); }

TEST_F(SamplingCuda, LogSoftmaxV2Vocabulary) { check_log_softmax(make_logits(8, 102400, 5.0f, 0.0f, -1, 22)); }

}  // namespace
}  // namespace mlaserve::ops
