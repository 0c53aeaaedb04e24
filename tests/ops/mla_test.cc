// The MLA building blocks around the two attention forms: latent cache write/gather, K/V
// expansion, query absorption and output up-projection — and the absorption equivalence of
// MODEL_SPEC §10 item 4 across all of them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "op_test_util.h"
#include "ops/latent_cache.h"
#include "ops/linear.h"
#include "ops/mha_attention.h"
#include "ops/mla_absorb.h"
#include "ops/mla_absorbed_attention.h"
#include "ops/mla_decode.h"
#include "ops/mla_expand_kv.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"

namespace mlaserve::ops {
namespace {

using testing::expect_all_written;
using testing::i32_tensor;
using testing::max_rel_error;
using testing::poisoned;
using testing::random_tensor;
using testing::rel_l2_error;
using testing::to_doubles;

constexpr int64_t kDn = 128, kDr = 64, kDv = 128, kDc = 512;

TEST(LatentCache, WriteSkipsPaddingRoundsAndGathersBack) {
  std::mt19937_64 rng(60);
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    Tensor latent = random_tensor({4, kDc}, DType::kF32, rng), k_pe = random_tensor({4, kDr}, DType::kF32, rng);
    Tensor cache = Tensor::empty({3, kKvBlockSize, kCacheRowDim}, dtype);
    cache.fill_bytes(0xFF);                                        // NaN in both dtypes
    Tensor slots = Tensor::empty({4}, DType::kI64);
    const int64_t slot_values[] = {2 * 64 + 5, -1, 0 * 64 + 63, 1 * 64 + 0};  // token 1 is padding
    std::copy(std::begin(slot_values), std::end(slot_values), slots.data<int64_t>());
    write_latent_cache_cpu(latent, k_pe, slots, cache);
    const std::vector<float> c = cache.to_vector(), l = latent.to_vector(), p = k_pe.to_vector();
    int64_t written = 0;
    for (float v : c) written += std::isnan(v) ? 0 : 1;
    EXPECT_EQ(written, 3 * kCacheRowDim);  // exactly the three rows, nothing else touched
    for (int64_t t : {0, 2, 3}) {
      const int64_t row = slot_values[t] * kCacheRowDim;
      for (int64_t j = 0; j < kDc; ++j) {
        const float want = dtype == DType::kBF16 ? round_bf16(l[t * kDc + j]) : l[t * kDc + j];
        ASSERT_EQ(c[row + j], want);
      }
      for (int64_t j = 0; j < kDr; ++j) {
        const float want = dtype == DType::kBF16 ? round_bf16(p[t * kDr + j]) : p[t * kDr + j];
        ASSERT_EQ(c[row + kDc + j], want);
      }
    }
    // Gather a "sequence" whose blocks are [0, 2]: positions 63 (block 0) and 69 (block 2, row 5).
    Tensor got_latent = poisoned({70, kDc}, DType::kF32), got_pe = poisoned({70, kDr}, DType::kF32);
    Tensor table = i32_tensor({0, 2}, {2});
    cache.fill_bytes(0);
    write_latent_cache_cpu(latent, k_pe, slots, cache);
    gather_latent_cache_cpu(cache, table, got_latent, got_pe);
    expect_all_written(got_latent);
    for (int64_t j = 0; j < kDc; ++j) {
      ASSERT_EQ(got_latent.data<float>()[63 * kDc + j], c[slot_values[2] * kCacheRowDim + j]);
      ASSERT_EQ(got_latent.data<float>()[69 * kDc + j], c[slot_values[0] * kCacheRowDim + j]);
    }
    Tensor too_long = Tensor::empty({129, kDc}, DType::kF32), too_long_pe = Tensor::empty({129, kDr}, DType::kF32);
    EXPECT_THROW(gather_latent_cache_cpu(cache, table, too_long, too_long_pe), Error);  // needs a third block
  }
  Tensor cache = Tensor::zeros({1, kKvBlockSize, kCacheRowDim}, DType::kBF16);
  EXPECT_THROW(write_latent_cache_cpu(Tensor::zeros({1, kDc}, DType::kF32), Tensor::zeros({1, kDr}, DType::kF32),
                                      i32_tensor({64}, {1}), cache),
               Error);
}

TEST(MlaExpandKv, SplitsPerHeadBlocksAndBroadcastsKPe) {
  std::mt19937_64 rng(61);
  const int64_t s = 5, n = 3;
  Tensor kv = random_tensor({s, n, kDn + kDv}, DType::kF32, rng), k_pe = random_tensor({s, kDr}, DType::kF32, rng);
  Tensor k = poisoned({s, n, kDn + kDr}, DType::kF32), v = poisoned({s, n, kDv}, DType::kF32);
  mla_expand_kv_cpu(kv, k_pe, k, v);
  expect_all_written(k);
  expect_all_written(v);
  const float *kvp = kv.data<float>(), *pe = k_pe.data<float>(), *kp = k.data<float>(), *vp = v.data<float>();
  for (int64_t i = 0; i < s; ++i) {
    for (int64_t h = 0; h < n; ++h) {
      for (int64_t c = 0; c < kDn; ++c) ASSERT_EQ(kp[(i * n + h) * 192 + c], kvp[(i * n + h) * 256 + c]);
      for (int64_t c = 0; c < kDr; ++c) ASSERT_EQ(kp[(i * n + h) * 192 + kDn + c], pe[i * kDr + c]);
      for (int64_t c = 0; c < kDv; ++c) ASSERT_EQ(vp[(i * n + h) * kDv + c], kvp[(i * n + h) * 256 + kDn + c]);
    }
  }
}

TEST(MlaAbsorb, QueryAndOutputMatchNaive) {
  std::mt19937_64 rng(62);
  const int64_t t = 6, n = 3;
  for (DType wdtype : {DType::kF32, DType::kBF16}) {
    Tensor w = random_tensor({n * (kDn + kDv), kDc}, wdtype, rng, 0.05f);
    Tensor q = random_tensor({t, n, kDn + kDr}, DType::kF32, rng);
    Tensor q_abs = poisoned({t, n, kDc + kDr}, DType::kF32);
    mla_absorb_query_cpu(q, w, q_abs);
    expect_all_written(q_abs);
    Tensor o_lat = random_tensor({t, n, kDc}, DType::kF32, rng);
    Tensor o = poisoned({t, n, kDv}, DType::kF32);
    mla_up_project_output_cpu(o_lat, w, o);
    expect_all_written(o);

    const auto wd = to_doubles(w), qd = to_doubles(q), ld = to_doubles(o_lat);
    std::vector<double> want_q(static_cast<size_t>(t * n * (kDc + kDr)), 0.0), want_o(static_cast<size_t>(t * n * kDv), 0.0);
    for (int64_t i = 0; i < t; ++i) {
      for (int64_t h = 0; h < n; ++h) {
        const double* qn = &qd[(i * n + h) * 192];
        double* dst = &want_q[(i * n + h) * 576];
        for (int64_t c = 0; c < kDc; ++c) {
          for (int64_t d = 0; d < kDn; ++d) dst[c] += qn[d] * wd[(h * 256 + d) * kDc + c];  // W_UK[h] rows
        }
        for (int64_t c = 0; c < kDr; ++c) dst[kDc + c] = qn[kDn + c];
        for (int64_t j = 0; j < kDv; ++j) {
          for (int64_t c = 0; c < kDc; ++c) {
            want_o[(i * n + h) * kDv + j] += wd[(h * 256 + kDn + j) * kDc + c] * ld[(i * n + h) * kDc + c];  // W_UV[h]
          }
        }
      }
    }
    // fp32 sums of 128 and 512 terms: ~1e-6 of the output scale.
    EXPECT_LT(max_rel_error(q_abs, want_q), 1e-5);
    EXPECT_LT(max_rel_error(o, want_o), 1e-5);
  }
}

// ---- §10 item 4: absorbed form == MHA form, over the whole MLA attention block ----

struct MlaLayer {
  int64_t hidden = 256, n = 4;
  std::optional<int64_t> q_lora;  // dq, or no q compression (V2-Lite)
  Tensor w_q, w_qa, q_a_norm, w_qb;  // q_proj, or q_a_proj + q_a_layernorm + q_b_proj
  Tensor w_kva, kv_a_norm, w_kvb;
  Tensor cos_sin;
  float softmax_scale = 0.1147214f;
};

MlaLayer random_layer(std::optional<int64_t> q_lora, DType wdtype, std::mt19937_64& rng) {
  MlaLayer l;
  l.q_lora = q_lora;
  const float in_scale = 1.0f / std::sqrt(static_cast<float>(l.hidden));  // unit-variance outputs
  if (q_lora) {
    l.w_qa = random_tensor({*q_lora, l.hidden}, wdtype, rng, in_scale);
    l.q_a_norm = random_tensor({*q_lora}, wdtype, rng, 0.3f);
    l.w_qb = random_tensor({l.n * 192, *q_lora}, wdtype, rng, 1.0f / std::sqrt(static_cast<float>(*q_lora)));
  } else {
    l.w_q = random_tensor({l.n * 192, l.hidden}, wdtype, rng, in_scale);
  }
  l.w_kva = random_tensor({kCacheRowDim, l.hidden}, wdtype, rng, in_scale);
  l.kv_a_norm = random_tensor({kDc}, wdtype, rng, 0.3f);
  l.w_kvb = random_tensor({l.n * 256, kDc}, wdtype, rng, 1.0f / std::sqrt(static_cast<float>(kDc)));
  RopeParams rope;
  rope.yarn = true;
  rope.factor = 40.0;
  rope.mscale = rope.mscale_all_dim = 0.707;
  l.cos_sin = Tensor::empty({256, kDr}, DType::kF32);
  build_rope_cos_sin_cpu(rope, l.cos_sin);
  return l;
}

// The per-token projections (§3.1): q [S, n, 192] with rope, latent [S, 512] normed, k_pe [S, 64].
struct Projected {
  Tensor q, latent, k_pe;
};

Projected project(const MlaLayer& l, const Tensor& x, const Tensor& positions) {
  const int64_t s = x.dim(0);
  Projected p{Tensor::empty({s, l.n * 192}, DType::kF32), Tensor::empty({s, kDc}, DType::kF32),
              Tensor::empty({s, kDr}, DType::kF32)};
  if (l.q_lora) {
    Tensor cq = Tensor::empty({s, *l.q_lora}, DType::kF32);
    linear_cpu(x, l.w_qa, cq);
    rms_norm_cpu(cq, l.q_a_norm, 1e-6f, cq);
    linear_cpu(cq, l.w_qb, p.q);
  } else {
    linear_cpu(x, l.w_q, p.q);
  }
  p.q = p.q.reshape({s, l.n, 192});
  apply_rope_interleaved_cpu(p.q, positions, l.cos_sin, kDn);
  linear_cpu(x, l.w_kva.slice(0, kDc), p.latent);  // row slices of kv_a_proj_with_mqa
  rms_norm_cpu(p.latent, l.kv_a_norm, 1e-6f, p.latent);
  linear_cpu(x, l.w_kva.slice(kDc, kCacheRowDim), p.k_pe);
  apply_rope_interleaved_cpu(p.k_pe, positions, l.cos_sin, 0);
  return p;
}

// MHA form: up-project the latent to per-head K/V, causal attention. [S, n, 128]
Tensor mha_form(const MlaLayer& l, const Projected& p) {
  const int64_t s = p.latent.dim(0);
  Tensor kv = Tensor::empty({s, l.n * 256}, DType::kF32);
  linear_cpu(p.latent, l.w_kvb, kv);
  Tensor k = Tensor::empty({s, l.n, 192}, DType::kF32), v = Tensor::empty({s, l.n, kDv}, DType::kF32);
  mla_expand_kv_cpu(kv.reshape({s, l.n, 256}), p.k_pe, k, v);
  AttentionState out{Tensor::empty({s, l.n, kDv}, DType::kF32), Tensor::empty({s, l.n}, DType::kF32)};
  mha_attention_cpu(p.q, k, v, MhaParams{l.softmax_scale, true}, out);
  return out.out;
}

// Absorbed form over a batch of sequences sharing one paged cache with shuffled block tables:
// every token of every sequence is a query (q_len = seq_len, bottom-right causal). Returns
// [ΣS, n, 128] in sequence order. With round_to_bf16 the cache is bf16 and so is the latent
// query handed to the decode kernel, as on the GPU.
Tensor absorbed_form(const MlaLayer& l, const std::vector<Projected>& seqs, bool round_to_bf16,
                     std::mt19937_64& rng) {
  int64_t total = 0, blocks = 0, max_blocks = 0;
  for (const Projected& p : seqs) {
    total += p.latent.dim(0);
    blocks += (p.latent.dim(0) + kKvBlockSize - 1) / kKvBlockSize;
    max_blocks = std::max(max_blocks, (p.latent.dim(0) + kKvBlockSize - 1) / kKvBlockSize);
  }
  std::vector<int32_t> pool(static_cast<size_t>(blocks + 2));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  Tensor cache = random_tensor({blocks + 2, kKvBlockSize, kCacheRowDim}, round_to_bf16 ? DType::kBF16 : DType::kF32, rng);
  std::vector<int32_t> table(seqs.size() * max_blocks, -1), lens, starts{0};
  Tensor q_abs = Tensor::empty({total, l.n, kCacheRowDim}, DType::kF32);
  size_t next = 0;
  for (size_t b = 0; b < seqs.size(); ++b) {
    const int64_t s = seqs[b].latent.dim(0);
    Tensor slots = Tensor::empty({s}, DType::kI32);
    for (int64_t pos = 0; pos < s; ++pos) {
      if (pos % kKvBlockSize == 0) table[b * max_blocks + pos / kKvBlockSize] = pool[next++];
      slots.data<int32_t>()[pos] = table[b * max_blocks + pos / kKvBlockSize] * kKvBlockSize + pos % kKvBlockSize;
    }
    write_latent_cache_cpu(seqs[b].latent, seqs[b].k_pe, slots, cache);
    Tensor dst = q_abs.slice(starts.back(), starts.back() + s);
    mla_absorb_query_cpu(seqs[b].q, l.w_kvb, dst);
    lens.push_back(static_cast<int32_t>(s));
    starts.push_back(starts.back() + static_cast<int32_t>(s));
  }
  const auto b = static_cast<int64_t>(seqs.size());
  MlaDecodeArgs args{round_to_bf16 ? q_abs.to_dtype(DType::kBF16) : q_abs, cache, i32_tensor(table, {b, max_blocks}),
                     i32_tensor(lens, {b}), i32_tensor(starts, {b + 1}), l.softmax_scale};
  MlaDecodeOutputs lat{Tensor::empty({total, l.n, kDc}, DType::kF32), Tensor::empty({total, l.n}, DType::kF32)};
  mla_decode_cpu(args, lat);
  Tensor o = poisoned({total, l.n, kDv}, DType::kF32);
  mla_up_project_output_cpu(lat.out, l.w_kvb, o);
  expect_all_written(o);
  return o;
}

// Runs both forms for context lengths around the 64-token block size and returns the relative
// L2 error of the absorbed output against the MHA output (and the worst max-relative error).
void compare_forms(std::optional<int64_t> q_lora, DType wdtype, bool round_to_bf16, double* rel_l2,
                   double* max_rel) {
  std::mt19937_64 rng(63);
  const MlaLayer l = random_layer(q_lora, wdtype, rng);
  std::vector<Projected> seqs;
  std::vector<double> want;
  for (int64_t s : {1, 37, 64, 65, 130, 200}) {
    Tensor x = random_tensor({s, l.hidden}, DType::kF32, rng);
    Tensor positions = Tensor::empty({s}, DType::kI32);
    std::iota(positions.data<int32_t>(), positions.data<int32_t>() + s, 0);
    seqs.push_back(project(l, x, positions));
    const std::vector<double> o = to_doubles(mha_form(l, seqs.back()));
    want.insert(want.end(), o.begin(), o.end());
  }
  Tensor got = absorbed_form(l, seqs, round_to_bf16, rng);
  *rel_l2 = rel_l2_error(to_doubles(got), want);
  *max_rel = max_rel_error(got, want);
}

class AbsorptionEquivalence : public ::testing::TestWithParam<bool> {};  // with q_lora_rank?
INSTANTIATE_TEST_SUITE_P(QLora, AbsorptionEquivalence, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "WithQLora" : "NoQLora"; });

TEST_P(AbsorptionEquivalence, Fp32MatchesMhaForm) {
  // Same weights and inputs in fp32; the forms differ only in where they round (the per-head
  // K/V up-projection vs the W_UK/W_UV matmuls, 192- vs 576-term score dots): ~1e-7 relative
  // per step (measured ~2e-7 overall). 2e-6 is 10x that, and any real slip in the head layout,
  // the mask or the scale costs > 1e-2.
  double rel_l2 = 0.0, max_rel = 0.0;
  compare_forms(GetParam() ? std::optional<int64_t>(96) : std::nullopt, DType::kF32, false, &rel_l2, &max_rel);
  EXPECT_LT(max_rel, 2e-6);
  EXPECT_LT(rel_l2, 2e-6);
  testing::record_error("rel_l2", rel_l2);
  testing::record_error("max_rel", max_rel);
}

TEST_P(AbsorptionEquivalence, Bf16CacheAndQueryWithinBf16Tolerance) {
  // bf16 weights (exact on both sides), a bf16 cache and a bf16 latent query (as the GPU path
  // stores them) against the fp32 MHA form: each bf16 rounding is up to 2^-9 relative, so the
  // scores move by ~0.2-0.5% of their scale and the outputs by about as much (measured ~0.2%);
  // MODEL_SPEC's bf16 tolerance is ~1e-2 relative.
  double rel_l2 = 0.0, max_rel = 0.0;
  compare_forms(GetParam() ? std::optional<int64_t>(96) : std::nullopt, DType::kBF16, true, &rel_l2, &max_rel);
  EXPECT_LT(rel_l2, 1e-2);
  EXPECT_LT(max_rel, 1e-2);
  testing::record_error("rel_l2", rel_l2);
  testing::record_error("max_rel", max_rel);
}

TEST(MlaAbsorbedAttention, CpuIsTheThreeOpsInARow) {
  // The fused op's CPU reference (through the dispatch, host tensors) is mla_absorb_query_cpu,
  // mla_decode_cpu and mla_up_project_output_cpu in a row, to the bit; one query token a sequence
  // (the GPU kernel's case), 3 sequences over a shuffled paged cache. The host never "fits" the
  // fused kernel: the model keeps its three ops there.
  std::mt19937_64 rng(64);
  const int64_t n = 3, b = 3, max_blocks = 3;
  const std::vector<int32_t> lens = {1, 70, 130}, table = {4, -1, -1, 0, 5, -1, 2, 1, 3};
  MlaAbsorbedArgs a;
  a.q = random_tensor({b, n, kDn + kDr}, DType::kF32, rng);
  a.w_kv_b = random_tensor({n * (kDn + kDv), kDc}, DType::kBF16, rng, 0.05f);
  a.kv_cache = random_tensor({6, kKvBlockSize, kCacheRowDim}, DType::kBF16, rng);
  a.block_table = i32_tensor(table, {b, max_blocks});
  a.seq_lens = i32_tensor(lens, {b});
  a.query_start = i32_tensor({0, 1, 2, 3}, {b + 1});
  a.softmax_scale = 0.1352338f;
  Tensor o = poisoned({b, n, kDv}, DType::kF32);
  EXPECT_FALSE(mla_absorbed_attention_fits(a, o));
  mla_absorbed_attention(a, o);

  Tensor q_abs = Tensor::empty({b, n, kCacheRowDim}, DType::kF32);
  mla_absorb_query_cpu(a.q, a.w_kv_b, q_abs);
  MlaDecodeOutputs lat{Tensor::empty({b, n, kDc}, DType::kF32), Tensor::empty({b, n}, DType::kF32)};
  mla_decode_cpu(MlaDecodeArgs{q_abs, a.kv_cache, a.block_table, a.seq_lens, a.query_start, a.softmax_scale}, lat);
  Tensor want = Tensor::empty({b, n, kDv}, DType::kF32);
  mla_up_project_output_cpu(lat.out, a.w_kv_b, want);
  const std::vector<float> got_v = o.to_vector(), want_v = want.to_vector();
  ASSERT_EQ(got_v.size(), want_v.size());
  EXPECT_EQ(std::memcmp(got_v.data(), want_v.data(), got_v.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace mlaserve::ops
