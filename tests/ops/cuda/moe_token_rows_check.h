// The token-rows GEMV (moe_experts_token_rows, moe_experts_gemv_token_rows_cuda: gate_up reads the
// T token rows through sorted_tokens instead of rows gathered in expert order; all T staged, or
// each pass's rows from their tokens past a few tokens; e4m3 also from the rows' codes and scales,
// quantize_activations_fp8's, copied instead of quantised) against the same
// GEMV on the gathered rows, for BF16 (moe_experts_cuda_test.cc) and e4m3 weights
// (moe_experts_fp8_cuda_test.cc). The two run the same mma column for column, so the SwiGLU state
// and the output must be equal bit for bit: a wrong token, row or column mapping gives other bits.
// The gathered GEMV itself is checked against the CPU reference by the fixtures' other cases.
//
// Each check: the ids [T, k] grouped and gathered on the GPU (moe_group_and_gather), then both
// paths over all experts and over a rank's share [E/4, 3E/4) (views of weights, scales and
// offsets; the other rows stay poisoned in both), with every GEMV launch shape of
// kMoeGemvConfigs plus two with uneven and long runs of tiles, and through the dispatch
// (moe_experts_token_rows against moe_experts, where moe_experts_reads_token_rows holds), alone and
// beside the shared experts (GridPlacement::kBeside: both paths with it, bit for bit;
// against alone, the SwiGLU state bit for bit and the outputs at most a bf16 ulp apart, since only
// the down grid changes, or where a sum cancels, within what reordering its fp32 partials can
// move it: reorder_bound).
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda_check.h"
#include "gemm_cuda_test_util.h"  // poisoned_gpu, count_nonfinite
#include "moe_test_pool.h"
#include "ops/cuda/moe_experts_gemv.h"
#include "ops/fp8_quant.h"
#include "ops/moe_dispatch.h"
#include "ops/moe_experts.h"

namespace mlaserve::ops::testing {

// How far reordering the fp32 partial sums of out[r, c] = Σ_j h[j] · down[e, c, j] (j < Im) can
// move it: 2 (n - 1) · 2^-24 · Σ|partials| for n partials, at most 2 · Im · 2^-24 · Σ_j |h[j] · w[j]|
// (the partials are sums of the terms), doubled for e4m3 weights, whose GEMV multiplies h's e4m3
// codes (within 2^-4 of h but for tiny values) by the dequantised weights. `state` is row r's
// SwiGLU state h [Im]. A wrong row, column or expert moves an output by the order of that sum, not
// ~1e-4 of it.
inline float reorder_bound(const ExpertWeights& w, int64_t expert, int64_t col, const float* state) {
  const bool fp8 = w.is_fp8();
  const int64_t h = w.down.dim(1), im = w.intermediate();
  const auto row_of = [](const Tensor& t, int64_t r) {  // row r of t's first two dimensions flattened
    return t.reshape({t.dim(0) * t.dim(1), t.dim(2)}).slice(r, r + 1).to(Device::kCPU).to_f32();
  };
  const Tensor row = row_of(w.down, expert * h + col);  // [1, Im]
  const Tensor scale = fp8 ? row_of(w.down_scale, expert * w.down_scale.dim(1) + col / 128) : Tensor();
  double sum = 0.0;
  for (int64_t j = 0; j < im; ++j) {
    const float sw = fp8 ? scale.data<float>()[j / 128] : 1.0f;
    sum += std::fabs(double{state[j]} * row.data<float>()[j] * sw);
  }
  return static_cast<float>((fp8 ? 2.0 : 1.0) * 2.0 * static_cast<double>(im) * std::ldexp(1.0, -24) * sum);
}

// The check of the note at the top: `ids` [T·k] (token t's experts at t·k .. t·k + k - 1; repeats
// allowed, so that an expert can get more rows than T and take several passes), `x` [T, H] bf16
// on the GPU, weights `w` with `s`'s shapes.
inline void check_token_rows_match(const MoeShape& s, const ExpertWeights& w, const std::vector<int32_t>& ids,
                                   const Tensor& x, cudaStream_t stream) {
  const int64_t tokens = x.dim(0), p = tokens * s.top_k, h = s.hidden;
  const bool fp8 = w.is_fp8();
  SCOPED_TRACE("token rows: T " + std::to_string(tokens) + ", P " + std::to_string(p) + ", H " + std::to_string(h) +
               (fp8 ? ", e4m3" : ", bf16"));
  ASSERT_EQ(static_cast<int64_t>(ids.size()), p);
  const Tensor ids_gpu = i32_tensor(ids, {tokens, s.top_k}).to(Device::kCUDA);
  MoeGrouping groups{poisoned_gpu({s.experts + 1}, DType::kI32, stream), poisoned_gpu({p}, DType::kI32, stream),
                     poisoned_gpu({p}, DType::kI32, stream)};
  Tensor gathered = poisoned_gpu({p, h}, DType::kBF16, stream);  // [P, H]
  moe_group_and_gather(ids_gpu, s.experts, x, groups, gathered, Stream{stream});
  MLA_CUDA_CHECK(cudaStreamSynchronize(stream));  // Tensor::to does not wait for a non-blocking stream
  const Tensor off_host = groups.expert_offsets.to(Device::kCPU);
  const int32_t* offsets = off_host.data<int32_t>();
  Fp8Activations x_q;  // e4m3 weights: the token rows' codes and scales, as the model's norm writes them
  if (fp8) {
    x_q = {poisoned_gpu({tokens, h}, DType::kF8E4M3, stream), poisoned_gpu({tokens, h / 128}, DType::kF32, stream),
           Tensor()};
    quantize_activations_fp8(x, ActQuantParams{}, x_q.x_q, x_q.scales, Stream{stream});
  }

  std::vector<gpu::MoeGemvConfig> configs(std::begin(gpu::kMoeGemvConfigs), std::end(gpu::kMoeGemvConfigs));
  configs.push_back({2, 2, 5});
  configs.push_back({1, 8, 16});
  for (const auto& [e0, e1] : {std::pair<int64_t, int64_t>{0, s.experts}, {s.experts / 4, 3 * s.experts / 4}}) {
    const Tensor off_view = groups.expert_offsets.slice(e0, e1 + 1);
    const ExpertWeights w_view{w.gate_up.slice(e0, e1), w.down.slice(e0, e1),
                               fp8 ? w.gate_up_scale.slice(e0, e1) : Tensor(),
                               fp8 ? w.down_scale.slice(e0, e1) : Tensor()};
    const int64_t first = offsets[e0], last = offsets[e1];
    // One run: the gathered rows through the GEMV with `config`, or the token rows (their e4m3
    // codes when `codes`) through it (config) or the dispatch (null; the default launch shape);
    // `placement`: what runs beside it (the shared experts: the down grid may leave them SMs).
    enum class From { kGathered, kTokens, kCodes };
    const auto run = [&](const gpu::MoeGemvConfig* config, From from,
                         GridPlacement placement = GridPlacement::kAlone) {
      std::pair<Tensor, Tensor> r{poisoned_gpu({p, s.inter}, DType::kBF16, stream),  // hidden [P, Im]
                                  poisoned_gpu({p, h}, DType::kBF16, stream)};       // out [P, H]
      const Fp8Activations& codes = from == From::kCodes ? x_q : Fp8Activations{};
      if (from == From::kGathered) {
        moe_experts_gemv_cuda(gathered, off_view, w_view, ActQuantParams{}, r.first, r.second, stream,
                              config ? *config : gpu::kMoeGemvDefault, placement);
      } else if (config == nullptr) {
        moe_experts_token_rows(x, codes, groups.sorted_tokens, off_view, w_view, ActQuantParams{}, r.first, r.second,
                               Stream{stream}, placement);
      } else {
        moe_experts_gemv_token_rows_cuda(x, codes, groups.sorted_tokens, off_view, w_view, ActQuantParams{}, r.first,
                                         r.second, stream, *config, placement);
      }
      MLA_CUDA_CHECK(cudaStreamSynchronize(stream));
      return r;
    };
    const auto compare = [&](const std::string& name, const gpu::MoeGemvConfig* config, From from,
                             GridPlacement placement = GridPlacement::kAlone) {
      const auto want = run(config, From::kGathered, placement), got = run(config, from, placement);
      const std::string where = name + (from == From::kCodes ? " from codes" : "") + ", experts [" +
                                std::to_string(e0) + ", " + std::to_string(e1) + ")";
      EXPECT_EQ(count_nonfinite(want.second.slice(first, last).to(Device::kCPU)), 0)
          << where << ": the gathered path left rows unwritten";
      EXPECT_EQ(byte_mismatches(got.first, want.first), 0) << where << ": SwiGLU state";
      EXPECT_EQ(byte_mismatches(got.second, want.second), 0)
          << where << ": output (rows outside the share: poison in both)";
    };
    std::vector<From> froms = {From::kTokens};
    if (fp8) froms.push_back(From::kCodes);
    for (const From from : froms) {
      if (moe_experts_reads_token_rows(Device::kCUDA, tokens, p, w)) {
        compare("dispatch", nullptr, from);
        compare("dispatch beside the shared experts", nullptr, from, GridPlacement::kBeside);
        // Beside against alone: gate_up's grid is the same (the same SwiGLU state, bit for bit);
        // down's may be smaller, which changes only the order of its tiles' fp32 sums.
        const auto alone = run(nullptr, from), beside = run(nullptr, from, GridPlacement::kBeside);
        EXPECT_EQ(byte_mismatches(beside.first, alone.first), 0) << "beside the shared experts: SwiGLU state";
        // bf16 roundings of the same fp32 sums in another order: equal, or adjacent values, or
        // where the sum cancels, within what reordering its fp32 partial sums can move it.
        const Tensor got = beside.second.to(Device::kCPU).to_f32(), want = alone.second.to(Device::kCPU).to_f32();
        const Tensor state = beside.first.to(Device::kCPU).to_f32();
        int64_t beyond = 0;
        for (int64_t i = first * h; i < last * h; ++i) {
          const float a = got.data<float>()[i], b = want.data<float>()[i];
          const float m = std::max(std::fabs(a), std::fabs(b));
          const float ulp = m > 0.0f ? std::ldexp(1.0f, std::ilogb(m) - 7) : 0.0f;
          if (std::fabs(a - b) <= ulp) continue;
          const int64_t row = i / h;  // of expert e: offsets[e] <= row < offsets[e + 1]
          const auto e = std::upper_bound(offsets, offsets + s.experts + 1, static_cast<int32_t>(row)) - offsets - 1;
          const float bound = ulp + reorder_bound(w, e, i % h, state.data<float>() + row * s.inter);
          beyond += std::fabs(a - b) > bound ? 1 : 0;
        }
        EXPECT_EQ(beyond, 0) << "beside the shared experts against alone: outputs further apart than a bf16 ulp and "
                                "the reordering of their fp32 sums";
      }
      for (const gpu::MoeGemvConfig& config : configs) {
        compare("gemv ctas/sm " + std::to_string(config.ctas_per_sm) + " depth " + std::to_string(config.depth) +
                    " tiles/cta " + std::to_string(config.tiles_per_cta),
                &config, from);
      }
    }
  }
}

// [T, H] random bf16 token rows on the GPU.
inline Tensor random_token_rows(int64_t tokens, int64_t hidden, uint64_t seed, cudaStream_t stream) {
  Tensor x = Tensor::empty({tokens, hidden}, DType::kBF16, Device::kCUDA);
  fill_random(x, seed, stream);
  return x;
}

// check_token_rows_match at each of `token_counts` tokens routed to distinct experts of `pool`
// (the experts with weights), fresh token rows each.
inline void check_token_rows_steps(const MoeShape& s, const ExpertWeights& w, const std::vector<int64_t>& pool,
                                   const std::vector<int64_t>& token_counts, uint64_t seed, cudaStream_t stream) {
  std::mt19937_64 rng(seed);
  for (const int64_t t : token_counts) {
    check_token_rows_match(s, w, distinct_ids(s, pool, t, rng), random_token_rows(t, s.hidden, seed + t, stream),
                           stream);
  }
}

// Experts that get more rows than there are tokens (ids repeated within a token: not what the
// router does, but what the kernel must survive), on the small shape: T 5 with every pair on
// expert 3 (10 rows: two passes of 8, each staging all 5 token rows, or each pass's rows),
// T 8 on experts 2 and 7 only, T 12 on expert 5 (passes of rows from 12 tokens: indexed).
inline void check_token_rows_repeats(const MoeShape& s, const ExpertWeights& w, uint64_t seed, cudaStream_t stream) {
  check_token_rows_match(s, w, std::vector<int32_t>(static_cast<size_t>(5 * s.top_k), 3),
                         random_token_rows(5, s.hidden, seed, stream), stream);
  check_token_rows_match(s, w, std::vector<int32_t>(static_cast<size_t>(12 * s.top_k), 5),
                         random_token_rows(12, s.hidden, seed + 2, stream), stream);
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < 8 * s.top_k; ++i) ids.push_back(i % 2 == 0 ? 2 : 7);
  check_token_rows_match(s, w, ids, random_token_rows(8, s.hidden, seed + 1, stream), stream);
}

// check_token_rows_steps over a pool of `pool_size` experts of s drawn at random (all of them when
// pool_size is E), to which make_weights(pool, seed) gives weights in w, then with experts of more
// rows than tokens (check_token_rows_repeats) when `repeats`.
template <typename MakeWeights>
inline void check_token_rows_case(const MoeShape& s, int64_t pool_size, const std::vector<int64_t>& token_counts,
                                  bool repeats, uint64_t seed, MakeWeights&& make_weights, const ExpertWeights& w,
                                  cudaStream_t stream) {
  std::mt19937_64 rng(seed);
  const std::vector<int64_t> pool = random_pool(s.experts, pool_size, rng);
  make_weights(pool, seed);
  check_token_rows_steps(s, w, pool, token_counts, seed + 1, stream);
  if (repeats) check_token_rows_repeats(s, w, seed + 2, stream);
}

}  // namespace mlaserve::ops::testing
