// merge_attention_states_cuda (through the dispatch) against merge_attention_states_cpu: out
// [T, n, 128] bf16 and lse [T, n] f32 for 16 and 128 heads, T up to 2048, into a poisoned
// state and in place (merged = a). Rows mix every lse case: both sides finite (far apart and
// close), one side -inf, both -inf. On the GPU the out rows of -inf sides hold NaN: the contract
// says such a side contributes nothing, so it must not even be read (the CPU reference, which
// multiplies by 0, gets zeros there instead).
//
// Tolerances: the GPU's expf/logf are within 2 ulp of glibc's, so the fp32 weights agree to
// ~1e-6 relative; out is rounded once to bf16: |got - want| <= 2^-8 |want| + 1e-6 (|out_a| +
// |out_b|) per element. lse is fp32 on both sides: |got - want| <= 1e-6 max(1, |want|), and
// -inf exactly where the CPU has -inf.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <vector>

#include "attention_fp8_check.h"
#include "cuda_op_test_util.h"
#include "ops/merge_attention_states.h"

namespace mlaserve::ops {
namespace {

using testing::count_nan;
using testing::CudaOpTest;
using testing::poisoned_gpu;
using testing::random_tensor;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr uint16_t kBf16NaN = 0x7FC0;

struct HostState {
  Tensor out;  // [T, n, dv] bf16: the GPU's input (NaN rows where lse = -inf)
  Tensor lse;  // [T, n] f32
};

// Random state; row r's lse is -inf when empty(r).
template <typename Empty>
HostState random_state(int64_t t, int64_t n, int64_t dv, std::mt19937_64& rng, Empty empty) {
  HostState s{random_tensor({t, n, dv}, DType::kBF16, rng), Tensor::empty({t, n}, DType::kF32)};
  std::uniform_real_distribution<float> lse(-5.0f, 20.0f);
  for (int64_t r = 0; r < t * n; ++r) {
    s.lse.data<float>()[r] = empty(r) ? kNegInf : lse(rng);
    if (!empty(r)) continue;
    for (int64_t c = 0; c < dv; ++c) s.out.data<bfloat16>()[r * dv + c].bits = kBf16NaN;
  }
  return s;
}

// The CPU's view: f32, zeros instead of the NaN rows.
AttentionState cpu_state(const HostState& s) {
  AttentionState c{s.out.to_f32(), s.lse.clone()};
  float* out = c.out.data<float>();
  for (int64_t i = 0; i < c.out.numel(); ++i) out[i] = std::isnan(out[i]) ? 0.0f : out[i];
  return c;
}

class MergeAttentionStatesCuda : public CudaOpTest {
 protected:
  // With fp8, first the merge with merged.out quantised in its place (attention_fp8_check.h).
  void check(int64_t t, int64_t n, int64_t dv, bool in_place, uint64_t seed,
             std::optional<ActQuantParams> fp8 = std::nullopt) {
    std::mt19937_64 rng(seed);
    // Row r: r % 7 == 3 has no keys in a, r % 7 == 5 none in b, r % 7 == 6 none in either.
    const HostState a = random_state(t, n, dv, rng, [](int64_t r) { return r % 7 == 3 || r % 7 == 6; });
    const HostState b = random_state(t, n, dv, rng, [](int64_t r) { return r % 7 == 5 || r % 7 == 6; });
    const AttentionState ca = cpu_state(a), cb = cpu_state(b);
    AttentionState want{Tensor::empty({t, n, dv}, DType::kF32), Tensor::empty({t, n}, DType::kF32)};
    merge_attention_states_cpu(ca, cb, want);

    AttentionState ga{a.out.to(Device::kCUDA), a.lse.to(Device::kCUDA)};
    const AttentionState gb{b.out.to(Device::kCUDA), b.lse.to(Device::kCUDA)};
    AttentionState merged = in_place ? ga
                                     : AttentionState{poisoned_gpu({t, n, dv}, DType::kBF16),
                                                      poisoned_gpu({t, n}, DType::kF32)};
    if (fp8) {  // the codes in place of out first (in place: into a's copy), from the same rows
      AttentionState a2{ga.out.clone(), ga.lse.clone()};
      AttentionState into = in_place ? a2 : AttentionState{poisoned_gpu({t, n, dv}, DType::kBF16),
                                                           poisoned_gpu({t, n}, DType::kF32)};
      const AttentionFp8Output merged_q = testing::poisoned_fp8_output(t, n, *fp8);
      merge_attention_states(a2, gb, into, stream(), merged_q);
      AttentionState plain{poisoned_gpu({t, n, dv}, DType::kBF16), poisoned_gpu({t, n}, DType::kF32)};
      merge_attention_states(ga, gb, plain, stream());
      testing::expect_fp8_of_output(plain.out, merged_q);
      EXPECT_EQ(to_host(into.lse).to_vector(), to_host(plain.lse).to_vector()) << "lse";
    }
    merge_attention_states(ga, gb, merged, stream());
    const std::vector<float> out = to_host(merged.out).to_vector(), lse = to_host(merged.lse).to_vector();
    ASSERT_EQ(count_nan(out) + count_nan(lse), 0) << "NaN: unwritten, or an empty side was read";

    const std::vector<float> want_out = want.out.to_vector(), want_lse = want.lse.to_vector();
    const std::vector<float> in_a = ca.out.to_vector(), in_b = cb.out.to_vector();
    int64_t bad_out = 0, bad_lse = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      const double bound = std::ldexp(std::abs(want_out[i]), -8) + 1e-6 * (std::abs(in_a[i]) + std::abs(in_b[i]));
      bad_out += !(std::abs(static_cast<double>(out[i]) - want_out[i]) <= bound) ? 1 : 0;
    }
    for (size_t r = 0; r < lse.size(); ++r) {
      if (want_lse[r] == kNegInf) {
        bad_lse += lse[r] != kNegInf ? 1 : 0;
      } else {
        const double bound = 1e-6 * std::max(1.0, std::abs(static_cast<double>(want_lse[r])));
        bad_lse += !(std::abs(static_cast<double>(lse[r]) - want_lse[r]) <= bound) ? 1 : 0;
      }
    }
    EXPECT_EQ(bad_out, 0) << "out elements off by more than bf16 rounding";
    EXPECT_EQ(bad_lse, 0) << "lse values off";
  }
};

TEST_F(MergeAttentionStatesCuda, SmallEveryLseCase) {
  check(3, 7, 128, false, 1);
  check(3, 7, 128, true, 2);
}

TEST_F(MergeAttentionStatesCuda, SmallOddWidth) { check(5, 3, 20, false, 3); }

TEST_F(MergeAttentionStatesCuda, Prefill16Heads) { check(2048, 16, 128, false, 11); }

TEST_F(MergeAttentionStatesCuda, InPlace128Heads) { check(500, 128, 128, true, 12); }

// The merged rows also as FP8 codes for o_proj (the last merge of a chunked prefill), in place
// and not, with both scale formats; the rows of two empty sides quantise zeros.
TEST_F(MergeAttentionStatesCuda, SmallFp8Output) {
  check(3, 7, 128, false, 21, ActQuantParams{});
  check(5, 16, 128, true, 22, ActQuantParams{kFp8AmaxFloor, Fp8ScaleFormat::kUE8M0});
}

TEST_F(MergeAttentionStatesCuda, Fp8OutputPrefill128Heads) { check(1000, 128, 128, true, 23, ActQuantParams{}); }

}  // namespace
}  // namespace mlaserve::ops
