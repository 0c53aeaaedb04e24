// mha_attention_cuda (sm_90a) against the CPU reference mha_attention_cpu, on fresh random bf16
// inputs at DeepSeek's shapes (qk dim 192, v dim 128; 16 heads: V3 under TP8 or V2-Lite, 128
// heads: V3 on one GPU), Tq/Tk in {1, 7, 64, 65, 300, 1000, 4096}: causal with Tk >= Tq (a chunk
// of new tokens after cached context), non-causal (a chunk of context), Tk = 0. Outputs are
// poisoned (NaN bytes) first and every element must be written; with row views, the rows around
// the output view must stay untouched.
//
// Tolerances, from the precision of the GPU path: inputs are the same bf16 values on both sides
// and the scores are fp32 on both (tensor-core products of bf16 are exact, sums fp32); the GPU
// rounds the softmax weights P to bf16 before P V (relative error <= 2^-8 each, ~2^-8/√3 RMS,
// random in sign) and rounds out to bf16 (the same). Together ~2-3e-3 relative L2 (measured on
// an H100: 1.5-2.0e-3, worst row 3.0e-3); 1e-2 over the tensor and 2e-2 for any single (token,
// head) row leave margin, while a wrong mask, a lost key block or a misplaced row costs far
// more. lse is fp32 on both sides (exp2/log2 in fp32; measured <= 2e-5): 1e-3.
//
// The reference is plain fp32 loops, so large cases compare a few heads (every output is still
// checked written); heads run on parallel threads. Small* cases also run under compute-sanitizer.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "../op_test_util.h"
#include "attention_fp8_check.h"
#include "core/cuda_check.h"
#include "ops/mha_attention.h"

namespace mlaserve::ops {
namespace {

constexpr int64_t kDqk = 192;
constexpr int64_t kDv = 128;
constexpr float kV3Scale = 0.1352338f;  // V3's (dn + dr)^-1/2 · m²

struct Case {
  int64_t tq;
  int64_t tk;
  int64_t n;
  bool causal;
  float v_scale = 1.0f;  // v times this power of two: outputs of other magnitudes
};

// Uniform(-√3, √3) (unit variance) rounded to bf16; a fast generator, since the large cases
// need a few hundred million values.
Tensor random_bf16(const Shape& shape, uint64_t seed) {
  const int64_t count = shape_numel(shape);
  if (count == 0) return Tensor::empty(shape, DType::kBF16);
  std::vector<float> v(static_cast<size_t>(count));
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& f : v) {
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    f = (static_cast<float>(z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * 1.7320508f;
  }
  return Tensor::from_floats(v, shape, DType::kBF16);
}

// Head h of a host f32 [T, n, d] tensor as [T, 1, d].
Tensor head_of(const Tensor& t, int64_t h) {
  const int64_t rows = t.dim(0), n = t.dim(1), d = t.dim(2);
  Tensor out = Tensor::empty({rows, 1, d}, DType::kF32);
  const float* src = t.data<float>();
  float* dst = out.data<float>();
  for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * d, src + (r * n + h) * d, d * sizeof(float));
  return out;
}

// Heads compared against the reference: all of them while that is cheap, else four spread out.
std::vector<int64_t> checked_heads(const Case& c) {
  if (c.n * c.tq * std::max<int64_t>(c.tk, 1) <= (int64_t{1} << 26)) {
    std::vector<int64_t> all(static_cast<size_t>(c.n));
    for (int64_t h = 0; h < c.n; ++h) all[h] = h;
    return all;
  }
  return {0, 1, c.n / 2 + 1, c.n - 1};
}

struct HeadResult {
  std::vector<float> out;  // [Tq, dv]
  std::vector<float> lse;  // [Tq]
};

// mha_attention_cpu on each checked head, on parallel threads.
std::vector<HeadResult> reference(const Tensor& q, const Tensor& k, const Tensor& v, const MhaParams& params,
                                  const std::vector<int64_t>& heads) {
  const Tensor qf = q.to_f32(), kf = k.to_f32(), vf = v.to_f32();
  std::vector<HeadResult> results(heads.size());
  auto run_head = [&](size_t i) {
    AttentionState st{Tensor::empty({q.dim(0), 1, kDv}, DType::kF32), Tensor::empty({q.dim(0), 1}, DType::kF32)};
    mha_attention_cpu(head_of(qf, heads[i]), head_of(kf, heads[i]), head_of(vf, heads[i]), params, st);
    results[i] = {st.out.to_vector(), st.lse.to_vector()};
  };
  const size_t workers = std::max<size_t>(1, std::min<size_t>(heads.size(), std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (size_t w = 0; w < workers; ++w) {
    pool.emplace_back([&, w] {
      for (size_t i = w; i < heads.size(); i += workers) run_head(i);
    });
  }
  for (std::thread& t : pool) t.join();
  return results;
}

// got_out [Tq, n, dv] and got_lse [Tq, n] (host f32) against the reference of the checked heads.
void expect_matches(const std::vector<float>& got_out, const std::vector<float>& got_lse, const Case& c,
                    const std::vector<int64_t>& heads, const std::vector<HeadResult>& want) {
  int64_t unwritten = 0;
  for (float x : got_out) unwritten += std::isnan(x) ? 1 : 0;
  for (float x : got_lse) unwritten += std::isnan(x) ? 1 : 0;
  ASSERT_EQ(unwritten, 0) << "outputs left unwritten (poison) or NaN";

  double num = 0.0, den = 0.0, worst_row = 0.0, worst_lse = 0.0;
  int64_t worst_row_at = -1, worst_lse_at = -1;
  for (size_t hi = 0; hi < heads.size(); ++hi) {
    const int64_t h = heads[hi];
    for (int64_t i = 0; i < c.tq; ++i) {
      double rn = 0.0, rd = 0.0;
      for (int64_t ch = 0; ch < kDv; ++ch) {
        const double g = got_out[(i * c.n + h) * kDv + ch], w = want[hi].out[i * kDv + ch];
        rn += (g - w) * (g - w);
        rd += w * w;
      }
      num += rn;
      den += rd;
      const double row_err = rd > 0.0 ? std::sqrt(rn / rd) : std::sqrt(rn);
      if (row_err > worst_row) {
        worst_row = row_err;
        worst_row_at = i * c.n + h;
      }
      const float gl = got_lse[i * c.n + h], wl = want[hi].lse[i];
      const double e = (std::isinf(gl) && std::isinf(wl) && (gl < 0) == (wl < 0)) ? 0.0 : std::abs(double{gl} - wl);
      if (e > worst_lse || std::isnan(e)) {
        worst_lse = e;
        worst_lse_at = i * c.n + h;
      }
    }
  }
  const double rel_l2 = den > 0.0 ? std::sqrt(num / den) : std::sqrt(num);
  testing::record_error("out_rel_l2", rel_l2);
  testing::record_error("out_worst_row", worst_row);
  testing::record_error("lse_max_abs", worst_lse);
  EXPECT_LT(rel_l2, 1e-2) << "relative L2 error of out";
  EXPECT_LT(worst_row, 2e-2) << "worst (token, head) row " << worst_row_at;
  EXPECT_LT(worst_lse, 1e-3) << "lse at row " << worst_lse_at;
}

class MhaAttentionCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU visible: mha_attention_cuda needs an sm_90a GPU";
    cudaDeviceProp prop{};
    MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    if (prop.major != 9) GTEST_SKIP() << "mha_attention_cuda is built for sm_90a; this GPU is " << prop.name;
  }

  // Fresh inputs, poisoned outputs, one call through the dispatch, and the comparison; with fp8,
  // a second call with the output's FP8 codes and scales instead (attention_fp8_check.h).
  static void check(const Case& c, uint64_t seed, float scale = kV3Scale,
                    std::optional<ActQuantParams> fp8 = std::nullopt) {
    SCOPED_TRACE(::testing::Message() << "Tq " << c.tq << ", Tk " << c.tk << ", " << c.n << " heads, "
                                      << (c.causal ? "causal" : "non-causal") << ", v x " << c.v_scale
                                      << ", seed " << seed
                                      << (fp8 ? ", FP8 output" : ""));
    const Tensor q = random_bf16({c.tq, c.n, kDqk}, seed * 3 + 1);
    const Tensor k = random_bf16({c.tk, c.n, kDqk}, seed * 3 + 2);
    Tensor v = random_bf16({c.tk, c.n, kDv}, seed * 3 + 3);
    if (c.v_scale != 1.0f) {
      std::vector<float> scaled = v.to_f32().to_vector();
      for (float& x : scaled) x *= c.v_scale;  // exact: a power of two, inside bf16's range
      v = Tensor::from_floats(scaled, v.shape(), DType::kBF16);
    }
    const MhaParams params{scale, c.causal};
    AttentionState got{Tensor::empty({c.tq, c.n, kDv}, DType::kBF16, Device::kCUDA),
                       Tensor::empty({c.tq, c.n}, DType::kF32, Device::kCUDA)};
    got.out.fill_bytes(0xFF);  // NaN in bf16 and f32
    got.lse.fill_bytes(0xFF);
    const Tensor qg = q.to(Device::kCUDA), kg = k.to(Device::kCUDA), vg = v.to(Device::kCUDA);
    mha_attention(qg, kg, vg, params, got, Stream{});
    if (fp8) {  // again, the codes in place of out: those of the rows just stored
      AttentionState again{Tensor::empty({c.tq, c.n, kDv}, DType::kBF16, Device::kCUDA),
                           Tensor::empty({c.tq, c.n}, DType::kF32, Device::kCUDA)};
      again.lse.fill_bytes(0xFF);
      const AttentionFp8Output got_q = testing::poisoned_fp8_output(c.tq, c.n, *fp8);
      mha_attention(qg, kg, vg, params, again, Stream{}, got_q);
      testing::expect_fp8_of_output(got.out, got_q);
      EXPECT_EQ(again.lse.to(Device::kCPU).to_vector(), got.lse.to(Device::kCPU).to_vector()) << "lse";
    }
    MLA_CUDA_CHECK(cudaDeviceSynchronize());

    const std::vector<int64_t> heads = checked_heads(c);
    expect_matches(got.out.to(Device::kCPU).to_vector(), got.lse.to(Device::kCPU).to_vector(), c, heads,
                   reference(q, k, v, params, heads));
  }
};

// ---- small cases (also run under compute-sanitizer) ------------------------------------------

TEST_F(MhaAttentionCuda, SmallCausalSquare16Heads) {
  uint64_t seed = 100;
  for (int64_t t : {1, 7, 64, 65}) check({t, t, 16, true}, ++seed);
}

TEST_F(MhaAttentionCuda, SmallCausalAfterContext16Heads) {
  uint64_t seed = 200;
  for (auto [tq, tk] : {std::pair<int64_t, int64_t>{1, 65}, {7, 300}, {64, 128}, {65, 300}}) {
    check({tq, tk, 16, true}, ++seed);
  }
}

TEST_F(MhaAttentionCuda, SmallNonCausal16Heads) {
  uint64_t seed = 300;
  for (auto [tq, tk] : {std::pair<int64_t, int64_t>{1, 1}, {7, 64}, {65, 7}, {64, 300}, {300, 65}}) {
    check({tq, tk, 16, false}, ++seed);
  }
}

TEST_F(MhaAttentionCuda, SmallNoKeys) {
  check({7, 0, 16, false}, 401);
  check({1, 0, 16, false}, 402);
  check({65, 0, 128, false}, 403);
}

TEST_F(MhaAttentionCuda, SmallCausal128Heads) {
  check({65, 65, 128, true}, 501);
  check({7, 300, 128, true}, 502);
}

TEST_F(MhaAttentionCuda, SmallNonCausal128Heads) { check({64, 65, 128, false}, 601); }

// Scores ~7x larger than V3's (scale 1): the running maximum moves often and most weights
// underflow, which exercises the rescaling of O and the -inf handling.
TEST_F(MhaAttentionCuda, SmallPeakedScores) {
  check({300, 300, 16, true}, 701, 1.0f);
  check({65, 300, 16, false}, 702, 1.0f);
}

// q, k, v and the outputs as row slices of larger tensors (how the model passes chunks): the
// kernel must read only its rows and write only its rows.
TEST_F(MhaAttentionCuda, SmallRowViews) {
  const Case c{65, 300, 16, true};
  const int64_t q0 = 3, k0 = 5, o0 = 2, pad = 4;
  const Tensor q_all = random_bf16({c.tq + q0 + pad, c.n, kDqk}, 801);
  const Tensor k_all = random_bf16({c.tk + k0 + pad, c.n, kDqk}, 802);
  const Tensor v_all = random_bf16({c.tk + k0 + pad, c.n, kDv}, 803);
  const Tensor q = q_all.slice(q0, q0 + c.tq), k = k_all.slice(k0, k0 + c.tk), v = v_all.slice(k0, k0 + c.tk);
  const MhaParams params{kV3Scale, c.causal};

  Tensor out_all = Tensor::empty({c.tq + o0 + pad, c.n, kDv}, DType::kBF16, Device::kCUDA);
  Tensor lse_all = Tensor::empty({c.tq + o0 + pad, c.n}, DType::kF32, Device::kCUDA);
  out_all.fill_bytes(0xFF);
  lse_all.fill_bytes(0xFF);
  const Tensor qg = q_all.to(Device::kCUDA), kg = k_all.to(Device::kCUDA), vg = v_all.to(Device::kCUDA);
  AttentionState got{out_all.slice(o0, o0 + c.tq), lse_all.slice(o0, o0 + c.tq)};
  mha_attention(qg.slice(q0, q0 + c.tq), kg.slice(k0, k0 + c.tk), vg.slice(k0, k0 + c.tk), params, got, Stream{});
  MLA_CUDA_CHECK(cudaDeviceSynchronize());

  const std::vector<float> out = out_all.to(Device::kCPU).to_vector(), lse = lse_all.to(Device::kCPU).to_vector();
  const int64_t out_row = c.n * kDv;
  int64_t touched = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(lse.size()); ++i) {
    const bool inside = i >= o0 * c.n && i < (o0 + c.tq) * c.n;
    if (!inside) touched += std::isnan(lse[i]) ? 0 : 1;
  }
  for (int64_t i = 0; i < static_cast<int64_t>(out.size()); ++i) {
    const bool inside = i >= o0 * out_row && i < (o0 + c.tq) * out_row;
    if (!inside) touched += std::isnan(out[i]) ? 0 : 1;
  }
  EXPECT_EQ(touched, 0) << "elements written outside the output views";

  const std::vector<int64_t> heads = checked_heads(c);
  expect_matches(std::vector<float>(out.begin() + o0 * out_row, out.begin() + (o0 + c.tq) * out_row),
                 std::vector<float>(lse.begin() + o0 * c.n, lse.begin() + (o0 + c.tq) * c.n), c, heads,
                 reference(q, k, v, params, heads));
}

// The output as FP8 codes for o_proj (AttentionFp8Output): the epilogue quantises the bf16 rows
// it would store, rows past Tq (65: a partial block of 128) left alone, the power-of-two scales of
// UE8M0 checkpoints, and Tk = 0 (zeros: every scale the floor's).
TEST_F(MhaAttentionCuda, SmallFp8Output) {
  check({7, 7, 16, true}, 1501, kV3Scale, ActQuantParams{});
  check({65, 300, 16, true}, 1502, kV3Scale, ActQuantParams{});
  check({64, 65, 128, false}, 1503, kV3Scale, ActQuantParams{});
  check({65, 65, 16, true}, 1504, kV3Scale, ActQuantParams{kFp8AmaxFloor, Fp8ScaleFormat::kUE8M0});
  check({7, 0, 16, false}, 1505, kV3Scale, ActQuantParams{});
}

// Outputs far from unit size: the epilogue's division (fp8_act_quantize_by, its reciprocal
// hoisted) must give the quantiser's bits where values are tiny against the floor's scale (e4m3
// subnormals and zeros: 2^-20, 2^-40), near and past the edge of its fast range (2^-62, 2^-70:
// the exact division), and large (2^40); with vLLM's floor the scale itself gets small.
TEST_F(MhaAttentionCuda, SmallFp8OutputMagnitudes) {
  uint64_t seed = 1510;
  for (float v_scale : {0x1p-20f, 0x1p-40f, 0x1p-62f, 0x1p-70f, 0x1p40f}) {
    check({65, 65, 16, true, v_scale}, ++seed, kV3Scale, ActQuantParams{});
    check({65, 65, 16, true, v_scale}, ++seed, kV3Scale, ActQuantParams{1e-10f, Fp8ScaleFormat::kFloat32});
  }
}

// ---- prefill-sized cases ---------------------------------------------------------------------

TEST_F(MhaAttentionCuda, CausalSquare16Heads) {
  uint64_t seed = 1000;
  for (int64_t t : {300, 1000, 4096}) check({t, t, 16, true}, ++seed);
}

TEST_F(MhaAttentionCuda, CausalAfterContext16Heads) {
  uint64_t seed = 1100;
  for (auto [tq, tk] : {std::pair<int64_t, int64_t>{1, 4096}, {64, 1000}, {300, 1000}, {1000, 4096}}) {
    check({tq, tk, 16, true}, ++seed);
  }
}

TEST_F(MhaAttentionCuda, NonCausal16Heads) {
  uint64_t seed = 1200;
  for (auto [tq, tk] : {std::pair<int64_t, int64_t>{1000, 4096}, {4096, 1000}, {65, 4096}, {1, 1000}}) {
    check({tq, tk, 16, false}, ++seed);
  }
}

TEST_F(MhaAttentionCuda, Causal128Heads) {
  check({1000, 1000, 128, true}, 1301);
  check({4096, 4096, 128, true}, 1302);
}

TEST_F(MhaAttentionCuda, Fp8OutputPrefill) {
  check({4096, 4096, 16, true}, 1601, kV3Scale, ActQuantParams{});
  check({1000, 1000, 128, true}, 1602, kV3Scale, ActQuantParams{});
}

TEST_F(MhaAttentionCuda, NonCausal128Heads) {
  check({300, 1000, 128, false}, 1401);
  check({1000, 4096, 128, false}, 1402);
}

}  // namespace
}  // namespace mlaserve::ops
