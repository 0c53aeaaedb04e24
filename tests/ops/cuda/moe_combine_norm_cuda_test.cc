// moe_combine_add_rms_norm_cuda (through the dispatch) against the two CUDA ops it replaces and
// against the CPU reference, at V2-Lite's shapes (H 2048, k 6, E 64) and V3's (H 7168, k 8,
// E 256), T = 1, 2, 8, 64, 1000 and both sides of the scan / workspace switch (2048 pairs: V2-Lite
// T 341 / 342, V3 T 256 / 257), with and without shared experts, bf16 and f32 norm weights.
//
// Bit for bit: the fused op must give exactly the residual and the normed output of
// moe_combine_cuda (onto a copy of shared_out, or onto zeros) then add_rms_norm_cuda, on fresh
// random inputs (the header's promise: same roundings, same reduction order), and each of its two
// kernels forced (the scan kernel of decode batches, the rows kernel of prefill:
// moe_dispatch_kernels.h) must give what the op's own choice gives. Outputs are poisoned (NaN)
// first, and shared_out must come back unchanged. The Large* cases are prefill chunks: V2-Lite's
// T 1600 and 1601, V3's T 1111.
//
// Against the CPU (f32 throughout, moe_combine_cpu then add_rms_norm_cpu on the same bf16 inputs):
// the GPU rounds y = shared + Σ w x to bf16 (<= 2^-9 |y|), the new residual to bf16 (<= 2^-9
// |h + y|) and the output to bf16 (<= 2^-9), and sums in fp32 in another order (~1e-6 of the
// terms' magnitudes). Residual, per element: |got - want| <= 2^-8 (|want| + |y|) + 1e-5 ·
// (|h| + |shared| + Σ_j |w_j x_j|). Output, per row: relative L2 error < 1e-2 (three roundings of
// at most 2^-9 relative each while |y| <= |h + y| row-wise, as here with h ~ N(0, 8²) and y of
// order 1: <= 5.9e-3, as add_rms_norm's own test bounds the same error).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/cuda/moe_dispatch_kernels.h"
#include "ops/moe_combine_norm.h"
#include "ops/moe_dispatch.h"
#include "ops/rms_norm.h"

namespace mlaserve::ops {
namespace {

using testing::bf16_bits;
using testing::count_nan;
using testing::CudaOpTest;
using testing::mismatches;
using testing::poisoned_gpu;
using testing::random_tensor;
using testing::worst_row_rel_l2;

constexpr float kEps = 1e-6f;

struct Case {
  int64_t t, k, e, h;
  bool shared;         // the model has shared experts: the combine starts from their output
  DType norm_dtype;    // the next norm's weight
};

std::string describe(const Case& c) {
  return "T " + std::to_string(c.t) + " k " + std::to_string(c.k) + " E " + std::to_string(c.e) + " H " +
         std::to_string(c.h) + (c.shared ? " shared" : " no shared") +
         (c.norm_dtype == DType::kBF16 ? " bf16 norm" : " f32 norm");
}

// [t, k] distinct experts per token, uniformly drawn.
Tensor route_ids(int64_t t, int64_t k, int64_t e, std::mt19937_64& rng) {
  std::vector<int32_t> all(static_cast<size_t>(e)), ids;
  std::iota(all.begin(), all.end(), 0);
  for (int64_t i = 0; i < t; ++i) {
    std::shuffle(all.begin(), all.end(), rng);
    ids.insert(ids.end(), all.begin(), all.begin() + k);
  }
  return testing::i32_tensor(ids, {t, k});
}

class MoeCombineNormCuda : public CudaOpTest {
 protected:
  void check(const Case& c, uint64_t seed) {
    const std::string where = describe(c);
    const int64_t t = c.t, k = c.k, h = c.h;
    std::mt19937_64 rng(seed);
    MoeGrouping grouping{Tensor::empty({c.e + 1}, DType::kI32), Tensor::empty({t * k}, DType::kI32),
                         Tensor::empty({t * k}, DType::kI32)};
    moe_group_by_expert_cpu(route_ids(t, k, c.e, rng), c.e, grouping);
    const Tensor expert_out = random_tensor({t * k, h}, DType::kBF16, rng);  // [T·k, H]
    const Tensor shared = c.shared ? random_tensor({t, h}, DType::kBF16, rng, 0.5f) : Tensor();
    const Tensor residual = random_tensor({t, h}, DType::kBF16, rng, 8.0f);
    const Tensor norm_weight = random_tensor({h}, c.norm_dtype, rng, 0.5f);
    Tensor weights = Tensor::empty({t, k}, DType::kF32);
    std::uniform_real_distribution<float> w(0.02f, 0.6f);
    for (int64_t i = 0; i < t * k; ++i) weights.data<float>()[i] = w(rng);

    const Tensor expert_out_gpu = expert_out.to(Device::kCUDA), pairs_gpu = grouping.sorted_pairs.to(Device::kCUDA);
    const Tensor weights_gpu = weights.to(Device::kCUDA), norm_gpu = norm_weight.to(Device::kCUDA);
    const Tensor shared_gpu = c.shared ? shared.to(Device::kCUDA) : Tensor();

    // The two ops it replaces.
    Tensor y = c.shared ? shared.to(Device::kCUDA) : Tensor::empty({t, h}, DType::kBF16, Device::kCUDA);
    if (!c.shared) y.fill_bytes(0);
    moe_combine(expert_out_gpu, pairs_gpu, weights_gpu, y, stream());
    Tensor want_residual = residual.to(Device::kCUDA);
    Tensor want_out = poisoned_gpu({t, h}, DType::kBF16);
    add_rms_norm(y, want_residual, norm_gpu, kEps, want_out, stream());

    Tensor got_residual = residual.to(Device::kCUDA);
    Tensor got_out = poisoned_gpu({t, h}, DType::kBF16);
    moe_combine_add_rms_norm({expert_out_gpu, pairs_gpu, weights_gpu, shared_gpu}, got_residual, norm_gpu, kEps,
                             got_out, stream());

    const Tensor got_out_host = to_host(got_out), got_residual_host = to_host(got_residual);
    ASSERT_EQ(count_nan(got_out_host.to_vector()), 0) << where << ": outputs left unwritten";
    EXPECT_EQ(mismatches(bf16_bits(got_residual_host), bf16_bits(to_host(want_residual))), 0)
        << where << ": residual differs from moe_combine + add_rms_norm";
    EXPECT_EQ(mismatches(bf16_bits(got_out_host), bf16_bits(to_host(want_out))), 0)
        << where << ": normed output differs from moe_combine + add_rms_norm";
    if (c.shared) {
      EXPECT_EQ(mismatches(bf16_bits(to_host(shared_gpu)), bf16_bits(shared)), 0) << where << ": shared_out changed";
    }
    // Every kernel, and the scan kernel also reading the routing and prefetching before its wait
    // (early_inputs: here every input is complete before the launch, as the flag requires).
    for (const auto& [kernel, early] : {std::pair{MoeCombineKernel::kScan, false},
                                        std::pair{MoeCombineKernel::kRows, false},
                                        std::pair{MoeCombineKernel::kScan, true}}) {
      Tensor forced_residual = residual.to(Device::kCUDA);
      Tensor forced_out = poisoned_gpu({t, h}, DType::kBF16);
      moe_combine_add_rms_norm_cuda({expert_out_gpu, pairs_gpu, weights_gpu, shared_gpu, early}, forced_residual,
                                    norm_gpu, kEps, forced_out, cuda_stream(), kernel);
      const std::string at = where + ", " + combine_kernel_name(kernel) + " kernel" + (early ? ", early inputs" : "");
      EXPECT_EQ(mismatches(bf16_bits(to_host(forced_residual)), bf16_bits(got_residual_host)), 0)
          << at << ": residual differs from the op's choice";
      EXPECT_EQ(mismatches(bf16_bits(to_host(forced_out)), bf16_bits(got_out_host)), 0)
          << at << ": normed output differs from the op's choice";
    }

    // The CPU reference on the same (bf16) values in f32.
    Tensor cpu_residual = residual.to_f32();
    Tensor cpu_out = Tensor::empty({t, h}, DType::kF32);
    moe_combine_add_rms_norm_cpu({expert_out.to_f32(), grouping.sorted_pairs, weights,
                                  c.shared ? shared.to_f32() : Tensor()},
                                 cpu_residual, norm_weight.to_f32(), kEps, cpu_out);
    Tensor cpu_y = c.shared ? shared.to_f32() : Tensor::zeros({t, h}, DType::kF32);  // y alone, for the bound
    moe_combine_cpu(expert_out.to_f32(), grouping.sorted_pairs, weights, cpu_y);
    std::vector<float> magnitude = residual.to_vector();  // |h| + |shared| + Σ_j |w_j x_j|
    for (float& m : magnitude) m = std::abs(m);
    if (c.shared) {
      const std::vector<float> s = shared.to_vector();
      for (size_t i = 0; i < s.size(); ++i) magnitude[i] += std::abs(s[i]);
    }
    const std::vector<float> rows = expert_out.to_vector();
    const int32_t* sorted = grouping.sorted_pairs.data<int32_t>();
    for (int64_t pos = 0; pos < t * k; ++pos) {
      const int64_t token = sorted[pos] / k;
      const float wj = weights.data<float>()[sorted[pos]];
      for (int64_t ch = 0; ch < h; ++ch) magnitude[token * h + ch] += std::abs(wj * rows[pos * h + ch]);
    }
    const std::vector<float> got_res = got_residual_host.to_vector(), want_res = cpu_residual.to_vector();
    const std::vector<float> y_cpu = cpu_y.to_vector();
    int64_t bad = 0;
    for (size_t i = 0; i < got_res.size(); ++i) {
      const double bound = std::ldexp(std::abs(want_res[i]) + std::abs(y_cpu[i]), -8) + 1e-5 * magnitude[i];
      bad += !(std::abs(static_cast<double>(got_res[i]) - want_res[i]) <= bound) ? 1 : 0;
    }
    EXPECT_EQ(bad, 0) << where << ": of " << got_res.size() << " residual elements off by more than bf16 rounding";
    const double err = worst_row_rel_l2(got_out_host.to_vector(), cpu_out.to_vector(), h);
    testing::record_error("moe_combine_add_rms_norm_vs_cpu_worst_row_rel_l2", err);
    EXPECT_LT(err, 1e-2) << where;
  }
};

TEST_F(MoeCombineNormCuda, SmallShapes) {
  check({3, 2, 8, 64, true, DType::kBF16}, 1);
  check({3, 2, 8, 64, false, DType::kF32}, 2);
  check({5, 3, 8, 20, true, DType::kF32}, 3);   // width not a multiple of 8: the one-element path
  check({5, 3, 8, 20, false, DType::kBF16}, 4);
}

// A few decode-size cases at V2-Lite's width for the compute-sanitizer runs (scripts/gpu_test.sh
// runs *.Small* under memcheck and racecheck): 16-byte vectors on the scan path (T 1, 8), and the
// workspace path (T 342: 2052 pairs).
TEST_F(MoeCombineNormCuda, SmallDecodeV2Lite) {
  check({1, 6, 64, 2048, true, DType::kBF16}, 11);
  check({8, 6, 64, 2048, false, DType::kBF16}, 12);
  check({342, 6, 64, 2048, true, DType::kF32}, 13);
}

TEST_F(MoeCombineNormCuda, V2LiteShapes) {
  uint64_t seed = 100;
  for (int64_t t : {1, 2, 8, 64, 341, 342, 1000}) {
    check({t, 6, 64, 2048, true, DType::kBF16}, ++seed);
  }
  for (int64_t t : {1, 64, 1000}) check({t, 6, 64, 2048, false, DType::kBF16}, ++seed);
  check({8, 6, 64, 2048, true, DType::kF32}, ++seed);
}

TEST_F(MoeCombineNormCuda, V3Shapes) {
  uint64_t seed = 200;
  for (int64_t t : {1, 2, 8, 64, 256, 257, 1000}) {
    check({t, 8, 256, 7168, true, DType::kBF16}, ++seed);
  }
  for (int64_t t : {1, 1000}) check({t, 8, 256, 7168, false, DType::kF32}, ++seed);
}

// Prefill chunks (the rows kernel): V2-Lite T 1600 and 1601 with and without shared experts, V3
// T 1111 (8888 pairs), and the one-element path at width 20.
TEST_F(MoeCombineNormCuda, LargeV2Lite) {
  check({1600, 6, 64, 2048, true, DType::kBF16}, 301);
  check({1601, 6, 64, 2048, false, DType::kF32}, 302);
  check({999, 6, 64, 20, true, DType::kBF16}, 303);
}

TEST_F(MoeCombineNormCuda, LargeV3) { check({1111, 8, 256, 7168, true, DType::kBF16}, 311); }

}  // namespace
}  // namespace mlaserve::ops
