// MHA-form attention (MODEL_SPEC §3.2) and the LSE merge of chunked prefill (§4.3).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "op_test_util.h"
#include "ops/fp8_quant.h"
#include "ops/merge_attention_states.h"
#include "ops/mha_attention.h"

namespace mlaserve::ops {
namespace {

using testing::expect_all_written;
using testing::max_rel_error;
using testing::poisoned;
using testing::random_tensor;
using testing::to_doubles;

constexpr float kScale = 0.1147214f;  // V2-Lite's softmax scale
constexpr int64_t kHeads = 3, kQk = 192, kV = 128;

struct Qkv {
  Tensor q, k, v;
};

Qkv random_qkv(int64_t tq, int64_t tk, std::mt19937_64& rng) {
  return {random_tensor({tq, kHeads, kQk}, DType::kF32, rng), random_tensor({tk, kHeads, kQk}, DType::kF32, rng),
          random_tensor({tk, kHeads, kV}, DType::kF32, rng)};
}

AttentionState run(const Qkv& x, bool causal) {
  AttentionState s{poisoned({x.q.dim(0), kHeads, kV}, DType::kF32), poisoned({x.q.dim(0), kHeads}, DType::kF32)};
  mha_attention_cpu(x.q, x.k, x.v, MhaParams{kScale, causal}, s);
  expect_all_written(s.out);
  return s;
}

void naive(const Qkv& x, bool causal, std::vector<double>& out, std::vector<double>& lse) {
  const auto q = to_doubles(x.q), k = to_doubles(x.k), v = to_doubles(x.v);
  const int64_t tq = x.q.dim(0), tk = x.k.dim(0);
  out.assign(static_cast<size_t>(tq * kHeads * kV), 0.0);
  lse.assign(static_cast<size_t>(tq * kHeads), 0.0);
  for (int64_t i = 0; i < tq; ++i) {
    for (int64_t h = 0; h < kHeads; ++h) {
      const int64_t last = causal ? tk - tq + i : tk - 1;
      std::vector<double> s;
      for (int64_t j = 0; j <= last; ++j) {
        double acc = 0.0;
        for (int64_t c = 0; c < kQk; ++c) acc += q[(i * kHeads + h) * kQk + c] * k[(j * kHeads + h) * kQk + c];
        s.push_back(kScale * acc);
      }
      const double m = *std::max_element(s.begin(), s.end());
      double z = 0.0;
      for (double e : s) z += std::exp(e - m);
      for (int64_t j = 0; j <= last; ++j) {
        for (int64_t c = 0; c < kV; ++c) {
          out[(i * kHeads + h) * kV + c] += std::exp(s[j] - m) / z * v[(j * kHeads + h) * kV + c];
        }
      }
      lse[i * kHeads + h] = m + std::log(z);
    }
  }
}

// fp32 192-term dots (relative error ~1e-6 of the score scale) feeding exp: each softmax
// weight moves by ~1e-6 relative. 1e-5 keeps a 10x margin.
constexpr double kTolerance = 1e-5;

void expect_close(const AttentionState& got, const std::vector<double>& out, const std::vector<double>& lse) {
  EXPECT_LT(max_rel_error(got.out, out), kTolerance);
  const auto l = to_doubles(got.lse);
  for (size_t i = 0; i < l.size(); ++i) ASSERT_NEAR(l[i], lse[i], kTolerance * std::max(1.0, std::abs(lse[i])));
}

TEST(MhaAttention, MatchesNaive) {
  std::mt19937_64 rng(50);
  // (Tq, Tk, causal): a whole prompt, a chunk after 65 context tokens, a non-causal context chunk.
  for (auto [tq, tk, causal] : {std::tuple<int64_t, int64_t, bool>{37, 37, true}, {5, 70, true}, {4, 50, false}}) {
    Qkv x = random_qkv(tq, tk, rng);
    std::vector<double> out, lse;
    naive(x, causal, out, lse);
    expect_close(run(x, causal), out, lse);
  }
}

TEST(MhaAttention, FirstCausalQueryCopiesFirstValue) {
  std::mt19937_64 rng(51);
  Qkv x = random_qkv(6, 6, rng);
  AttentionState s = run(x, true);
  for (int64_t h = 0; h < kHeads; ++h) {
    for (int64_t c = 0; c < kV; ++c) ASSERT_EQ(s.out.data<float>()[h * kV + c], x.v.data<float>()[h * kV + c]);
  }
}

TEST(MhaAttention, NoKeysGiveZeroAndMinusInfinity) {
  std::mt19937_64 rng(52);
  Qkv x = random_qkv(3, 0, rng);
  AttentionState s = run(x, false);
  for (float v : s.out.to_vector()) EXPECT_EQ(v, 0.0f);
  for (float v : s.lse.to_vector()) EXPECT_EQ(v, -std::numeric_limits<float>::infinity());
  EXPECT_THROW(run(x, true), Error);  // causal needs Tk >= Tq
}

// A prompt large enough to be split over threads (ops/cpu_util.h, parallel_for: ~1 M
// multiply-adds a query row, 1,536 rows) gives the bits of each query row run alone against its
// visible keys (one row: one thread), causal, as chunked prefill runs it.
TEST(MhaAttention, ThreadsGiveTheBitsOfOneQueryRowAtATime) {
  std::mt19937_64 rng(53);
  const int64_t tq = 1536, tk = 1600;
  const Qkv x = random_qkv(tq, tk, rng);
  const AttentionState all = run(x, true);
  for (int64_t i = 0; i < tq; i += 97) {
    const int64_t visible = tk - tq + i + 1;
    const AttentionState one = run({x.q.slice(i, i + 1), x.k.slice(0, visible), x.v.slice(0, visible)}, true);
    EXPECT_EQ(std::memcmp(one.out.raw(), all.out.data<float>() + i * kHeads * kV, one.out.nbytes()), 0) << "row " << i;
    EXPECT_EQ(std::memcmp(one.lse.raw(), all.lse.data<float>() + i * kHeads, one.lse.nbytes()), 0) << "row " << i;
  }
}

Qkv key_rows(const Qkv& x, int64_t begin, int64_t end) { return {x.q, x.k.slice(begin, end), x.v.slice(begin, end)}; }

TEST(MergeAttentionStates, ChunkedPrefillEqualsFullAttention) {
  // 70 cached context tokens + a 30-token chunk. Full: causal attention of the chunk's queries
  // over all 100 keys. Chunked (vLLM's scheme): causal over the chunk's own keys, non-causal over
  // context keys [0, 40) and [40, 70), merged by LSE.
  std::mt19937_64 rng(53);
  const int64_t context = 70, chunk = 30;
  Qkv x = random_qkv(chunk, context + chunk, rng);
  AttentionState full = run(x, true);

  AttentionState self = run(key_rows(x, context, context + chunk), true);
  AttentionState ctx_a = run(key_rows(x, 0, 40), false);
  AttentionState ctx_b = run(key_rows(x, 40, context), false);
  AttentionState merged{poisoned({chunk, kHeads, kV}, DType::kF32), poisoned({chunk, kHeads}, DType::kF32)};
  merge_attention_states_cpu(ctx_a, ctx_b, merged);
  merge_attention_states_cpu(merged, self, merged);  // in place
  expect_all_written(merged.out);
  expect_all_written(merged.lse);
  // Both sides carry fp32 attention error (~1e-6) plus a few fp32 roundings in the merge.
  expect_close(merged, to_doubles(full.out), to_doubles(full.lse));
}

TEST(MergeAttentionStates, EmptySideContributesNothing) {
  std::mt19937_64 rng(54);
  Qkv x = random_qkv(4, 9, rng);
  AttentionState some = run(x, false);
  AttentionState none = run(key_rows(x, 0, 0), false);
  AttentionState merged{poisoned({4, kHeads, kV}, DType::kF32), poisoned({4, kHeads}, DType::kF32)};
  merge_attention_states_cpu(none, some, merged);
  EXPECT_EQ(merged.out.to_vector(), some.out.to_vector());
  EXPECT_EQ(merged.lse.to_vector(), some.lse.to_vector());
  merge_attention_states_cpu(none, none, merged);
  for (float v : merged.out.to_vector()) EXPECT_EQ(v, 0.0f);
  for (float v : merged.lse.to_vector()) EXPECT_EQ(v, -std::numeric_limits<float>::infinity());
}

// [T, n·128] codes and [T, n] scales on the host.
AttentionFp8Output fp8_output(int64_t t, int64_t n) {
  return {{Tensor::empty({t, n * kV}, DType::kF8E4M3), poisoned({t, n}, DType::kF32), Tensor()}, {}};
}

// Every code times its (token, head) scale within e4m3's rounding of the output it quantises:
// 3 mantissa bits give |x_q·s - x| <= 2^-4 |x| for normal codes, and at most half the smallest
// subnormal step (2^-10 · s) below them.
void expect_dequantises_to(const AttentionFp8Output& q8, const Tensor& out) {
  const int64_t t = out.dim(0), n = out.dim(1);
  const float* x = out.data<float>();
  int64_t bad = 0;
  for (int64_t r = 0; r < t * n; ++r) {
    const float scale = q8.q.scales.data<float>()[r];
    for (int64_t c = 0; c < kV; ++c) {
      const float got = e4m3_to_float(q8.q.x_q.data<float8_e4m3>()[r * kV + c]) * scale, want = x[r * kV + c];
      bad += std::abs(got - want) <= std::ldexp(std::abs(want), -4) + std::ldexp(scale, -10) ? 0 : 1;
    }
  }
  EXPECT_EQ(bad, 0) << "codes that do not dequantise to the output";
}

// The output's FP8 form (AttentionFp8Output) from both ops: codes that dequantise to the output
// the op computes without it, the same bits as the quantiser's pass over that output; and the
// merge of chunked prefill writes them too.
TEST(AttentionFp8Output, BothOpsWriteTheQuantisationOfOut) {
  std::mt19937_64 rng(55);
  const int64_t context = 40, chunk = 30;
  Qkv x = random_qkv(chunk, context + chunk, rng);
  const Qkv own = key_rows(x, context, context + chunk);
  const AttentionState self = run(own, true);
  AttentionState work{poisoned({chunk, kHeads, kV}, DType::kF32), poisoned({chunk, kHeads}, DType::kF32)};
  const AttentionFp8Output self_q = fp8_output(chunk, kHeads);
  mha_attention_cpu(own.q, own.k, own.v, MhaParams{kScale, true}, work, self_q);
  expect_dequantises_to(self_q, self.out);
  AttentionFp8Output pass = fp8_output(chunk, kHeads);
  quantize_activations_fp8_cpu(self.out.reshape({chunk, kHeads * kV}), {}, pass.q.x_q, pass.q.scales);
  EXPECT_EQ(std::memcmp(self_q.q.x_q.raw(), pass.q.x_q.raw(), self_q.q.x_q.nbytes()), 0);
  EXPECT_EQ(std::memcmp(self_q.q.scales.raw(), pass.q.scales.raw(), self_q.q.scales.nbytes()), 0);
  EXPECT_EQ(work.lse.to_vector(), self.lse.to_vector());

  const AttentionState ctx = run(key_rows(x, 0, context), false);
  AttentionState merged{poisoned({chunk, kHeads, kV}, DType::kF32), poisoned({chunk, kHeads}, DType::kF32)};
  merge_attention_states_cpu(ctx, self, merged);
  const AttentionFp8Output merged_q = fp8_output(chunk, kHeads);
  merge_attention_states_cpu(ctx, self, work, merged_q);
  expect_dequantises_to(merged_q, merged.out);
}

TEST(AttentionFp8Output, RejectsWhatItCannotWrite) {
  std::mt19937_64 rng(56);
  Qkv x = random_qkv(4, 4, rng);
  AttentionState s{poisoned({4, kHeads, kV}, DType::kF32), poisoned({4, kHeads}, DType::kF32)};
  AttentionFp8Output wrong_rows = fp8_output(3, kHeads);
  EXPECT_THROW(mha_attention_cpu(x.q, x.k, x.v, MhaParams{kScale, true}, s, wrong_rows), Error);
  AttentionFp8Output group_major = fp8_output(4, kHeads);
  group_major.q.scales_t = Tensor::empty({kHeads, 4}, DType::kF32);  // never written: refused
  EXPECT_THROW(merge_attention_states_cpu(s, s, s, group_major), Error);
  AttentionState narrow{poisoned({4, kHeads, 64}, DType::kF32), poisoned({4, kHeads}, DType::kF32)};
  AttentionFp8Output half = fp8_output(4, kHeads);
  EXPECT_THROW(merge_attention_states_cpu(narrow, narrow, narrow, half), Error);  // dv 64: no whole group a head
}

}  // namespace
}  // namespace mlaserve::ops
