// The fixture of the FP8 routed experts' GPU tests (moe_experts_fp8_cuda_test.cc: the grouped
// GEMMs, the GEMV, the layer, the quantised-rows path; moe_experts_fp8_cutlass_cuda_test.cc:
// CUTLASS's grouped kernel): DeepSeek's expert shapes, the weights on both sides, and the checks
// of one product, one layer and the GEMV against their CPU references.
//
// The grouped block-FP8 MoE GEMM and the FP8 experts on the GPU against the CPU reference, on
// fresh random inputs at DeepSeek's expert shapes: V2-Lite (64 experts, H 2048, Im 1408, k 6) and
// V3 (256 experts, H 7168, Im 2048, k 8), T from 1 to 4096 tokens, skewed routing that leaves
// experts empty, and small problems that run every tile configuration under compute-sanitizer.
//
// Weights: e4m3 codes drawn uniformly over every finite code (magnitudes 2^-9 .. 448, both signs)
// with block scales uniform in [0.5, 2) · 2^-8, for the experts of a random pool; every other
// expert's codes and scales are NaN, so a kernel that reads a wrong expert or an empty expert's
// tile fails. Outputs are poisoned first and must be fully written.
//
// Two checks, two references:
//  - moe_grouped_gemm_fp8_cuda (one launch, each kernel forced in turn: the mma.sync one and the
//    Hopper wgmma one with 128- and 256-row weight tiles, plain at the down projection's shape and
//    with the SwiGLU epilogue at gate_up's) from quantised inputs given to both sides: the
//    reference is linear_fp8_w8a8_cpu per expert (fp32 sums per 128-wide K group, then scaled;
//    silu_mul_cpu on it for SwiGLU).
//    Products of e4m3 values are exact, so the two differ by summation order, the tensor cores'
//    internal accumulation within a group and the bf16 rounding of the output (2^-9 relative at
//    most, ~1.1e-3 RMS; SwiGLU is computed in fp32 from the fp32 sums and rounded once, as the
//    plain output): relative L2 < 3e-3 and calc_diff (DeepGEMM's 1 - 2Σxy / Σ(x² + y²)) < 1e-5,
//    where a wrong scale group or a lost K tile gives > 1e-2.
//    CUTLASS's grouped blockwise kernel (MoeFp8Kernel::kCutlassGrouped, cooperative 128x128;
//    plain epilogue only) goes through the same check with the same bounds: beside the wgmma
//    kernel wherever it runs, and in its own cases (empty experts,
//    partial M tiles, one row, 64 and 256 experts, a rank's share with the other rows left
//    poisoned, a CUDA graph replay, the benchmark's 4 x 8192 x 4096 x 7168 shape).
//  - moe_experts (the whole FP8 layer through the dispatch) against a CPU model of the GPU's
//    path: quantize_activations_fp8_cpu, linear_fp8_w8a8_cpu, silu_mul_cpu, the SwiGLU state
//    rounded to bf16 (as the GPU stores it), quantised, linear_fp8_w8a8_cpu. Beyond the bf16
//    output, a gate/up sum that lands next to a bf16 rounding boundary can round the other way
//    and move the hidden value across an e4m3 boundary (one step, ~6% of that element). When that
//    element is its 128-group's amax, the group's scale moves by a bf16 step and every element of
//    the group is rounded to e4m3 afresh: two independent e4m3 roundings differ by ~3.6% RMS
//    (half-ulp 2^-4, uniform), so a row whose every hidden group flipped is off by ~3.6%. The
//    wgmma kernel makes this common: Hopper's FP8 tensor cores keep fewer bits than fp32 inside a
//    group (the reason for the per-group promotion), so its gate/up sums differ from the CPU's by
//    ~2^-14 relative and a few percent of the bf16 roundings flip (small shapes, two hidden
//    groups a row: worst rows 2.6-4.1e-2 measured on the H200, the mma.sync kernel < 2e-2). Bounds: relative
//    L2 < 1e-2 over the checked rows, < 6e-2 for any row (every group redrawn, with margin; a
//    wrong expert or scale gives O(1)), calc_diff < 1e-4. The error
//    against moe_experts_cpu itself (fp32 SwiGLU state) is recorded, not bounded tightly: it is
//    the cost of the bf16 state, a few 1e-3 expected, bounded at 5e-2.
//  - The grouped GEMV (moe_experts_gemv.cuh; kAuto runs it at a few rows) forced beside the
//    grouped GEMMs, both through the second check, and against each other with the same bounds
//    (check_layer_paths): small problems, and V2-Lite and V3 at T = 1 .. 4 tokens over a few
//    experts (so experts of 2 .. T rows), over all experts and over a rank's share [E/4, 3E/4)
//    (views of weights, scales and offsets; the other rows must stay poisoned), every row checked.
//    It quantises each pass's rows itself, bit-identically to quantize_activations_fp8_cuda, and
//    sums each group with the mma.sync e4m3 instruction the decode tiles use. Every check runs it
//    with the dispatch's launch shape (twice: the same bits) and with every one of
//    kMoeGemvConfigs (moe_experts_gemv_heuristics.h) plus two that make runs of several tiles on
//    the small problems.
//  - moe_experts_quantized (the model's prefill path, ffn_block.cc) against moe_experts on the
//    gathered bf16 rows (check_quantized_rows): the T token rows quantised, grouped without a
//    gather, their e4m3 rows and scales gathered (gather_fp8_rows). The quantisation is per row,
//    so the gathered codes and scales, the grouping, the SwiGLU state and the output must equal
//    the old path's bit for bit, over all experts and over a rank's share.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda_check.h"
#include "core/memory.h"
#include "gemm_cuda_test_util.h"
#include "moe_test_pool.h"
#include "moe_token_rows_check.h"
#include "ops/cuda/moe_experts_gemv.h"
#include "ops/cuda/moe_grouped_gemm_fp8_sm89_heuristics.h"
#include "ops/cuda/moe_grouped_gemm_fp8_sm90.h"
#include "ops/embedding.h"
#include "ops/linear_fp8.h"
#include "ops/moe_dispatch.h"
#include "ops/moe_experts.h"
#include "ops/silu_mul.h"

namespace mlaserve::ops::moe_fp8_test {

using testing::all_experts;
using testing::byte_mismatches;
using testing::checked_rows;
using testing::count_nonfinite;
using testing::fresh_seed;
using testing::gather_rows_f32;
using testing::kSmall;
using testing::kV2Lite;
using testing::kV3;
using testing::MoeShape;
using testing::offsets_of;
using testing::poisoned_gpu;
using testing::random_pool;
using testing::rows_written_outside;
using testing::skewed_counts;

inline uint64_t mix(uint64_t seed, uint64_t i) {
  uint64_t z = seed ^ (i * 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Random finite e4m3 codes (host).
inline Tensor random_e4m3(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::empty(shape, DType::kF8E4M3);
  auto* p = t.data<float8_e4m3>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    auto b = static_cast<uint8_t>(mix(seed, static_cast<uint64_t>(i)) >> 24);
    if ((b & 0x7F) == 0x7F) b ^= 1;  // no NaN
    p[i].bits = b;
  }
  return t;
}

// Random positive scales in [lo, 2 lo) (host f32).
inline Tensor random_scales(const Shape& shape, uint64_t seed, float lo) {
  Tensor t = Tensor::empty(shape, DType::kF32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    p[i] = lo * (1.0f + static_cast<float>(mix(seed, static_cast<uint64_t>(i)) >> 40) * 0x1p-24f);
  }
  return t;
}

inline void upload(const Tensor& host, Tensor gpu_view) {
  MLA_CHECK(host.nbytes() == gpu_view.nbytes(), "upload: {} vs {} bytes", host.nbytes(), gpu_view.nbytes());
  copy_bytes(gpu_view.raw(), Device::kCUDA, host.raw(), Device::kCPU, host.nbytes());
}

inline double calc_diff(const float* x, const float* y, int64_t n) {
  double xy = 0.0, xx = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    xy += double(x[i]) * y[i];
    xx += double(x[i]) * x[i] + double(y[i]) * y[i];
  }
  return xx > 0.0 ? 1.0 - 2.0 * xy / xx : 0.0;
}

class MoeFp8Cuda : public testing::Sm90StreamTest {
 protected:
  // Host FP8 weights of expert e (one-expert stacks), made on first use.
  const ExpertWeights& host_expert(int64_t e) {
    auto it = host_.find(e);
    if (it != host_.end()) return it->second;
    const MoeShape& s = shape_;
    const uint64_t k = seed_ + 4 * static_cast<uint64_t>(e);
    ExpertWeights w{down_only_ ? Tensor{} : random_e4m3({1, 2 * s.inter, s.hidden}, k),
                    random_e4m3({1, s.hidden, s.inter}, k + 1),
                    down_only_ ? Tensor{} : random_scales({1, 2 * s.inter / 128, s.hidden / 128}, k + 2, 0x1p-8f),
                    random_scales({1, s.hidden / 128, s.inter / 128}, k + 3, 0x1p-8f)};
    return host_.emplace(e, std::move(w)).first->second;
  }

  // GPU weights: NaN everywhere, the pool's experts copied from the host. down_only: the down
  // projection's weights only (plain GEMM checks at large shapes; gate_up left undefined).
  void make_weights(const MoeShape& s, const std::vector<int64_t>& pool, uint64_t seed, bool down_only = false) {
    shape_ = s;
    seed_ = seed;
    down_only_ = down_only;
    host_.clear();
    gpu_ = ExpertWeights{
        down_only ? Tensor{} : poisoned_gpu({s.experts, 2 * s.inter, s.hidden}, DType::kF8E4M3, stream_),
        poisoned_gpu({s.experts, s.hidden, s.inter}, DType::kF8E4M3, stream_),
        down_only ? Tensor{} : poisoned_gpu({s.experts, 2 * s.inter / 128, s.hidden / 128}, DType::kF32, stream_),
        poisoned_gpu({s.experts, s.hidden / 128, s.inter / 128}, DType::kF32, stream_)};
    MLA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (int64_t e : pool) {
      const ExpertWeights& h = host_expert(e);
      if (!down_only) {
        upload(h.gate_up, gpu_.gate_up.slice(e, e + 1));
        upload(h.gate_up_scale, gpu_.gate_up_scale.slice(e, e + 1));
      }
      upload(h.down, gpu_.down.slice(e, e + 1));
      upload(h.down_scale, gpu_.down_scale.slice(e, e + 1));
    }
  }

  // The GPU's path on the CPU (see the note at the top): x_rows [n, H] f32 -> [n, H] f32.
  Tensor modelled_reference(const Tensor& x_rows, const ExpertWeights& w) {
    const int64_t n = x_rows.dim(0), h = shape_.hidden, im = shape_.inter;
    auto slice0 = [](const Tensor& t) { return t.reshape({t.dim(1), t.dim(2)}); };
    Tensor xq = Tensor::empty({n, h}, DType::kF8E4M3), xs = Tensor::empty({n, h / 128}, DType::kF32);
    quantize_activations_fp8_cpu(x_rows, ActQuantParams{}, xq, xs);
    Tensor gu = Tensor::empty({n, 2 * im}, DType::kF32);
    linear_fp8_w8a8_cpu(xq, xs, slice0(w.gate_up), slice0(w.gate_up_scale), gu);
    Tensor hid = Tensor::empty({n, im}, DType::kF32);
    silu_mul_cpu(gu, hid);
    const Tensor hid_bf16 = hid.to_dtype(DType::kBF16).to_f32();
    Tensor hq = Tensor::empty({n, im}, DType::kF8E4M3), hs = Tensor::empty({n, im / 128}, DType::kF32);
    quantize_activations_fp8_cpu(hid_bf16, ActQuantParams{}, hq, hs);
    Tensor out = Tensor::empty({n, h}, DType::kF32);
    linear_fp8_w8a8_cpu(hq, hs, slice0(w.down), slice0(w.down_scale), out);
    return out;
  }

  // The checked rows of one expert and their two references (see the note at the top): the
  // modelled GPU path and moe_experts_cpu (fp32 SwiGLU state), [n, H] f32 each.
  struct ExpertRef {
    std::vector<int64_t> rows;
    Tensor modelled, fp32_state;
  };

  // References of the experts [e0, e1) with rows, for x = random_host(x_seed): all their rows
  // when check_all, else the first, the last and one random row of each.
  std::vector<ExpertRef> layer_refs(const std::vector<int32_t>& counts, uint64_t x_seed, bool check_all, int64_t e0,
                                    int64_t e1) {
    const MoeShape& s = shape_;
    const std::vector<int32_t> offsets = offsets_of(counts);
    const Tensor x_host = testing::random_host({offsets.back(), s.hidden}, DType::kBF16, x_seed);
    std::mt19937_64 rng(x_seed);
    std::vector<ExpertRef> refs;
    for (int64_t e = e0; e < e1; ++e) {
      if (counts[e] == 0) continue;
      ExpertRef ref{checked_rows(offsets[e], offsets[e + 1], check_all, rng), {}, {}};
      const auto n = static_cast<int64_t>(ref.rows.size());
      const Tensor x_rows = gather_rows_f32(x_host, ref.rows);  // [n, H]
      ref.modelled = modelled_reference(x_rows, host_expert(e));
      ref.fp32_state = Tensor::empty({n, s.hidden}, DType::kF32);
      moe_experts_cpu(x_rows, testing::i32_tensor({0, static_cast<int32_t>(n)}, {2}), host_expert(e),
                      ActQuantParams{}, ref.fp32_state);
      refs.push_back(std::move(ref));
    }
    return refs;
  }

  // The FP8 layer on x = random_host(x_seed) routed by counts: through moe_experts (kAuto) or
  // moe_experts_fp8_cuda with `path` forced, over the experts [e0, e1) only, as a rank holding that
  // share runs them (views of the stacked weights, scales and offsets). Every row of those experts
  // must be written and finite, every other row left as poisoned. Returns the output (host).
  // With `gemv_config`, the grouped GEMV with that launch shape (moe_experts_gemv_cuda) instead.
  Tensor run_layer(const std::vector<int32_t>& counts, uint64_t x_seed, MoeExpertsPath path, int64_t e0, int64_t e1,
                   const gpu::MoeGemvConfig* gemv_config = nullptr) {
    const MoeShape& s = shape_;
    const std::vector<int32_t> offsets = offsets_of(counts);
    const int64_t rows = offsets.back(), first = offsets[e0], last = offsets[e1];
    Tensor x_gpu = Tensor::empty({rows, s.hidden}, DType::kBF16, Device::kCUDA);  // [P, H]
    testing::fill_random(x_gpu, x_seed, stream_);
    const Tensor off_gpu = testing::i32_tensor(offsets, {s.experts + 1}).to(Device::kCUDA);
    const Tensor off_view = off_gpu.slice(e0, e1 + 1);  // [e1 - e0 + 1]
    const ExpertWeights w_view{gpu_.gate_up.slice(e0, e1), gpu_.down.slice(e0, e1), gpu_.gate_up_scale.slice(e0, e1),
                               gpu_.down_scale.slice(e0, e1)};
    Tensor out = poisoned_gpu({rows, s.hidden}, DType::kBF16, stream_);    // [P, H]
    Tensor hidden = poisoned_gpu({rows, s.inter}, DType::kBF16, stream_);  // [P, Im]
    if (gemv_config != nullptr) {
      moe_experts_gemv_cuda(x_gpu, off_view, w_view, ActQuantParams{}, hidden, out, stream_, *gemv_config);
    } else if (path == MoeExpertsPath::kAuto) {
      moe_experts(x_gpu, off_view, w_view, ActQuantParams{}, hidden, out, Stream{stream_});
    } else {
      moe_experts_fp8_cuda(x_gpu, off_view, w_view, ActQuantParams{}, hidden, out, stream_, path);
    }
    MLA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    const Tensor out_host = out.to(Device::kCPU);
    EXPECT_EQ(count_nonfinite(out_host.slice(first, last)), 0) << "outputs unwritten (poison) or not finite";
    EXPECT_EQ(rows_written_outside(out_host, first, last), 0) << "rows outside the experts' range were written";
    return out_host;
  }

  // out_host's checked rows against the references (bounds: the note at the top).
  void compare_layer(const Tensor& out_host, const std::vector<ExpertRef>& refs, const std::string& what) {
    const int64_t h = shape_.hidden;
    testing::RowErrorAccumulator modelled, plain;
    std::vector<float> got_all, want_all;
    for (const ExpertRef& ref : refs) {
      const Tensor got = gather_rows_f32(out_host, ref.rows);
      for (size_t i = 0; i < ref.rows.size(); ++i) {
        const int64_t at = static_cast<int64_t>(i) * h;
        modelled.add(got.data<float>() + at, ref.modelled.data<float>() + at, h, ref.rows[i]);
        plain.add(got.data<float>() + at, ref.fp32_state.data<float>() + at, h, ref.rows[i]);
      }
      got_all.insert(got_all.end(), got.data<float>(), got.data<float>() + got.numel());
      want_all.insert(want_all.end(), ref.modelled.data<float>(), ref.modelled.data<float>() + ref.modelled.numel());
    }
    testing::expect_close(modelled.result(), 1e-2, 6e-2, what);
    const double diff = calc_diff(got_all.data(), want_all.data(), static_cast<int64_t>(got_all.size()));
    testing::record_error(what + " calc_diff", diff);
    EXPECT_LT(diff, 1e-4) << what;
    testing::record_error(what + " rel_l2 vs fp32 SwiGLU state", plain.result().rel_l2);
    EXPECT_LT(plain.result().rel_l2, 5e-2) << what << " against moe_experts_cpu";
  }

  static std::string path_name(MoeExpertsPath path) {
    return path == MoeExpertsPath::kGemv ? "gemv" : path == MoeExpertsPath::kGroupedGemm ? "grouped gemm" : "auto";
  }

  std::string trace(const std::vector<int32_t>& counts, int64_t e0, int64_t e1) const {
    return "seed " + std::to_string(seed_) + ", P " + std::to_string(offsets_of(counts).back()) +
           " rows over experts [" + std::to_string(e0) + ", " + std::to_string(e1) + ") of " +
           std::to_string(shape_.experts);
  }

  // One step of the whole FP8 layer (run_layer, then compare_layer), all experts unless [e0, e1).
  void check_layer(const std::vector<int32_t>& counts, uint64_t x_seed, bool check_all,
                   MoeExpertsPath path = MoeExpertsPath::kAuto, int64_t e0 = 0, int64_t e1 = -1) {
    if (e1 < 0) e1 = shape_.experts;
    SCOPED_TRACE(trace(counts, e0, e1) + ", " + path_name(path));
    const std::vector<ExpertRef> refs = layer_refs(counts, x_seed, check_all, e0, e1);
    const Tensor out_host = run_layer(counts, x_seed, path, e0, e1);
    compare_layer(out_host, refs, "layer " + std::to_string(++steps_) + " P " +
                                      std::to_string(offsets_of(counts).back()) + " " + path_name(path));
  }

  // One step through the grouped GEMV (through the dispatch's default launch shape, then each of
  // gemv_configs()) and the grouped GEMMs, forced, over [e0, e1): each against the references,
  // then each GEMV's output against the grouped GEMMs'. Both quantise the same bf16 inputs
  // bit-identically, but their e4m3 tensor-core sums differ in order within a group, so a bf16
  // rounding of the hidden state can flip and redraw a group's quantisation (the note at the
  // top): the modelled reference's bounds hold between them too.
  void check_layer_paths(const std::vector<int32_t>& counts, uint64_t x_seed, bool check_all, int64_t e0, int64_t e1) {
    SCOPED_TRACE(trace(counts, e0, e1));
    const std::vector<ExpertRef> refs = layer_refs(counts, x_seed, check_all, e0, e1);
    const std::vector<int32_t> offsets = offsets_of(counts);
    const int64_t first = offsets[e0], last = offsets[e1], h = shape_.hidden;
    const std::string what = "layer " + std::to_string(++steps_) + " P " + std::to_string(offsets.back()) +
                             " experts [" + std::to_string(e0) + ", " + std::to_string(e1) + ")";
    const Tensor gemm_host = run_layer(counts, x_seed, MoeExpertsPath::kGroupedGemm, e0, e1);
    compare_layer(gemm_host, refs, what + " grouped gemm");
    const Tensor gemm = gemm_host.slice(first, last).to_f32();
    const auto against_gemm = [&](const Tensor& out_host, const std::string& name) {
      SCOPED_TRACE(name);
      compare_layer(out_host, refs, what + " " + name);
      const Tensor gemv = out_host.slice(first, last).to_f32();
      testing::RowErrorAccumulator between;
      for (int64_t r = 0; r < last - first; ++r) {
        between.add(gemv.data<float>() + r * h, gemm.data<float>() + r * h, h, first + r);
      }
      testing::expect_close(between.result(), 1e-2, 6e-2, what + " " + name + " vs grouped gemm");
      const double diff = calc_diff(gemv.data<float>(), gemm.data<float>(), gemv.numel());
      testing::record_error(what + " " + name + " vs grouped gemm calc_diff", diff);
      EXPECT_LT(diff, 1e-4) << what << " " << name << " vs grouped gemm";
    };
    const Tensor gemv_host = run_layer(counts, x_seed, MoeExpertsPath::kGemv, e0, e1);
    against_gemm(gemv_host, "gemv");
    // The same launch shape twice gives the same bits.
    const Tensor again = run_layer(counts, x_seed, MoeExpertsPath::kGemv, e0, e1);
    EXPECT_EQ(std::memcmp(gemv_host.raw(), again.raw(), static_cast<size_t>(gemv_host.numel()) * 2), 0)
        << what << " gemv: two runs differ";
    for (const gpu::MoeGemvConfig& config : gemv_configs()) {
      against_gemm(run_layer(counts, x_seed, MoeExpertsPath::kGemv, e0, e1, &config),
                   "gemv ctas/sm " + std::to_string(config.ctas_per_sm) + " depth " + std::to_string(config.depth) +
                       " tiles/cta " + std::to_string(config.tiles_per_cta));
    }
  }

  // Every launch shape of kMoeGemvConfigs, and two that give the small problems uneven and long
  // runs of tiles (the default's grid gives them one tile a CTA).
  static std::vector<gpu::MoeGemvConfig> gemv_configs() {
    std::vector<gpu::MoeGemvConfig> v(std::begin(gpu::kMoeGemvConfigs), std::end(gpu::kMoeGemvConfigs));
    v.push_back({2, 2, 5});
    v.push_back({1, 8, 16});
    return v;
  }

  // The token-rows GEMV against the gathered one (moe_token_rows_check.h): `pool_size` experts of s
  // with weights, each of token_counts, then experts of more rows than tokens when `repeats`.
  void check_token_rows(const MoeShape& s, int64_t pool_size, const std::vector<int64_t>& token_counts, bool repeats) {
    const auto weights = [&](const std::vector<int64_t>& pool, uint64_t seed) { make_weights(s, pool, seed); };
    testing::check_token_rows_case(s, pool_size, token_counts, repeats, fresh_seed(), weights, gpu_, stream_);
  }

  // The GEMV at a model's shape: T = 1 .. 4 tokens, each to top_k distinct experts of a pool of
  // top_k + 3 (tokens share experts: 2 .. T rows an expert at T >= 2), half the pool in
  // [E/4, 3E/4); every step over all experts and over that share only, every row checked; then
  // a forced run at 64 tokens (skewed routing: passes of 8 rows), three rows an expert.
  void check_gemv_model(const MoeShape& s) {
    const uint64_t seed = fresh_seed();
    std::mt19937_64 rng(seed);
    const testing::ExpertPool drawn = testing::gemv_test_pool(s.experts, s.top_k, rng);
    const int64_t e0 = drawn.share_begin, e1 = drawn.share_end;
    std::vector<int64_t> pool = drawn.experts;
    make_weights(s, pool, seed);
    for (int64_t t = 1; t <= 4; ++t) {
      const std::vector<int32_t> counts = testing::decode_counts(s.experts, s.top_k, pool, t, rng);
      check_layer_paths(counts, seed + 10 * static_cast<uint64_t>(t), /*check_all=*/true, 0, s.experts);
      check_layer_paths(counts, seed + 10 * static_cast<uint64_t>(t) + 1, /*check_all=*/true, e0, e1);
    }
    check_layer(skewed_counts(s, pool, 64, rng), seed + 100, /*check_all=*/false, MoeExpertsPath::kGemv);
  }

  static std::string kernel_name(MoeFp8Kernel kernel) {
    switch (kernel) {
      case MoeFp8Kernel::kWgmmaN128: return "wgmma n128";
      case MoeFp8Kernel::kWgmmaN256: return "wgmma n256";
      case MoeFp8Kernel::kCutlassGrouped: return "cutlass grouped";
      case MoeFp8Kernel::kMmaSync: return "mma.sync";
      case MoeFp8Kernel::kAuto: return "auto";
    }
    return "?";
  }

  // One grouped GEMM from quantised inputs through `kernel`: plain at the down projection's
  // shape (K = Im, N = H) or SwiGLU at gate_up's (K = H, weight rows 2·Im, N = Im). Over the
  // experts [e0, e1) only when e1 >= 0 (views of the weights, scales and offsets, as a rank holding
  // that share passes them): the rows outside [offsets[e0], offsets[e1]) must stay poisoned.
  void check_gemm(const std::vector<int32_t>& counts, uint64_t seed, bool check_all, MoeFp8Kernel kernel,
                  bool swiglu, int64_t e0 = 0, int64_t e1 = -1) {
    const MoeShape& s = shape_;
    if (e1 < 0) e1 = s.experts;
    const std::vector<int32_t> offsets = offsets_of(counts);
    const int64_t rows = offsets.back(), k = swiglu ? s.hidden : s.inter, n = swiglu ? s.inter : s.hidden;
    const int64_t w_rows = swiglu ? 2 * s.inter : s.hidden;
    const int64_t first = offsets[e0], last = offsets[e1];
    SCOPED_TRACE("seed " + std::to_string(seed) + ", GEMM P " + std::to_string(rows) + " " + kernel_name(kernel) +
                 (swiglu ? " swiglu" : " plain") + " experts [" + std::to_string(e0) + ", " + std::to_string(e1) +
                 ")");
    const Tensor a_q = random_e4m3({rows, k}, seed);
    const Tensor a_s = random_scales({rows, k / 128}, seed + 1, 0x1p-6f);
    Tensor a_q_gpu = Tensor::empty({rows, k}, DType::kF8E4M3, Device::kCUDA);
    Tensor a_s_gpu = Tensor::empty({rows, k / 128}, DType::kF32, Device::kCUDA);
    upload(a_q, a_q_gpu);
    upload(a_s, a_s_gpu);
    const Tensor off_gpu = testing::i32_tensor(offsets, {s.experts + 1}).to(Device::kCUDA);
    Tensor out = poisoned_gpu({rows, n}, DType::kBF16, stream_);
    const Tensor& b_q = swiglu ? gpu_.gate_up : gpu_.down;
    const Tensor& b_s = swiglu ? gpu_.gate_up_scale : gpu_.down_scale;
    moe_grouped_gemm_fp8_cuda(a_q_gpu, a_s_gpu, off_gpu.slice(e0, e1 + 1), b_q.slice(e0, e1), b_s.slice(e0, e1), swiglu,
                              out, stream_, kernel);
    MLA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    MLA_CUDA_CHECK(cudaGetLastError());
    const Tensor out_host = out.to(Device::kCPU);
    EXPECT_EQ(count_nonfinite(out_host.slice(first, last)), 0) << "outputs unwritten (poison) or not finite";
    EXPECT_EQ(rows_written_outside(out_host, first, last), 0) << "rows outside the experts' range were written";

    std::mt19937_64 rng(seed);
    testing::RowErrorAccumulator errors;
    std::vector<float> got_all, want_all;
    for (int64_t e = e0; e < e1; ++e) {
      if (counts[e] == 0) continue;
      const std::vector<int64_t> rows_e = checked_rows(offsets[e], offsets[e + 1], check_all, rng);
      const auto m = static_cast<int64_t>(rows_e.size());
      Tensor xq = Tensor::empty({m, k}, DType::kF8E4M3), xs = Tensor::empty({m, k / 128}, DType::kF32);
      for (int64_t i = 0; i < m; ++i) {
        std::copy_n(a_q.data<float8_e4m3>() + rows_e[i] * k, k, xq.data<float8_e4m3>() + i * k);
        std::copy_n(a_s.data<float>() + rows_e[i] * (k / 128), k / 128, xs.data<float>() + i * (k / 128));
      }
      const ExpertWeights& w = host_expert(e);
      const Tensor& wq = swiglu ? w.gate_up : w.down;
      const Tensor& ws = swiglu ? w.gate_up_scale : w.down_scale;
      Tensor sums = Tensor::empty({m, w_rows}, DType::kF32);  // [m, R]
      linear_fp8_w8a8_cpu(xq, xs, wq.reshape({w_rows, k}), ws.reshape({w_rows / 128, k / 128}), sums);
      Tensor want = Tensor::empty({m, n}, DType::kF32);
      if (swiglu) {
        silu_mul_cpu(sums, want);
      } else {
        want = sums;
      }
      const Tensor got = gather_rows_f32(out_host, rows_e);
      for (int64_t i = 0; i < m; ++i) errors.add(got.data<float>() + i * n, want.data<float>() + i * n, n, rows_e[i]);
      got_all.insert(got_all.end(), got.data<float>(), got.data<float>() + got.numel());
      want_all.insert(want_all.end(), want.data<float>(), want.data<float>() + want.numel());
    }
    const std::string what = "gemm " + std::to_string(++steps_) + " P " + std::to_string(rows) + " " +
                             kernel_name(kernel) + (swiglu ? " swiglu" : " plain");
    testing::expect_close(errors.result(), 3e-3, 6e-3, what);
    const double diff = calc_diff(got_all.data(), want_all.data(), static_cast<int64_t>(got_all.size()));
    testing::record_error(what + " calc_diff", diff);
    EXPECT_LT(diff, 1e-5) << what;
  }

  // Both epilogues through the kernels: with `every_kernel` the mma.sync one and both wgmma tile
  // widths (forced, also at decode-sized counts: tiles of a few rows, the second warpgroup idle);
  // else the kernel family kAuto picks (wgmma: both widths), to keep the DeepSeek-shaped cases'
  // CPU references affordable.
  void check_gemms(const std::vector<int32_t>& counts, uint64_t seed, bool check_all, bool every_kernel) {
    const int64_t rows = offsets_of(counts).back();
    const bool wgmma = sm90::moe_fp8::use_wgmma(rows, shape_.experts);
    std::vector<MoeFp8Kernel> kernels;
    if (every_kernel || !wgmma) kernels.push_back(MoeFp8Kernel::kMmaSync);
    if (every_kernel || wgmma) {
      kernels.push_back(MoeFp8Kernel::kWgmmaN128);
      kernels.push_back(MoeFp8Kernel::kWgmmaN256);
    }
    for (const MoeFp8Kernel kernel : kernels) {
      check_gemm(counts, seed++, check_all, kernel, /*swiglu=*/false);
      check_gemm(counts, seed++, check_all, kernel, /*swiglu=*/true);
    }
    // CUTLASS's grouped kernel: the plain epilogue only, wherever the wgmma kernel would run.
    if (every_kernel || wgmma) check_cutlass(counts, seed, check_all);
  }

  // The CUTLASS grouped kernel (plain epilogue), over experts [e0, e1) (all by default).
  void check_cutlass(const std::vector<int32_t>& counts, uint64_t seed, bool check_all, int64_t e0 = 0,
                     int64_t e1 = -1) {
    check_gemm(counts, seed, check_all, MoeFp8Kernel::kCutlassGrouped, /*swiglu=*/false, e0, e1);
  }

  void check_model(const MoeShape& s, int64_t materialised, const std::vector<int64_t>& token_counts) {
    const uint64_t seed = fresh_seed();
    std::mt19937_64 rng(seed);
    const std::vector<int64_t> pool = random_pool(s.experts, materialised, rng);
    make_weights(s, pool, seed);
    for (size_t i = 0; i < token_counts.size(); ++i) {
      const std::vector<int32_t> counts = skewed_counts(s, pool, token_counts[i], rng);
      check_layer(counts, seed + 1 + i, /*check_all=*/false);
      check_gemms(counts, seed + 100 + 8 * i, /*check_all=*/false, /*every_kernel=*/false);
    }
  }

  // The two ways to the FP8 layer's output from T token rows (the note at the top): `tokens`
  // rows each routed to top_k distinct experts of a pool of `materialised` (the others' weights
  // NaN). Old: moe_group_and_gather (bf16 rows in expert order), moe_experts. New:
  // quantize_activations_fp8 over the T rows, moe_group_by_expert, gather_fp8_rows,
  // moe_experts_quantized. Over all experts, then over the share [E/4, 3E/4) as a rank runs it
  // (views of weights, scales and offsets; the other rows left poisoned in both).
  void check_quantized_rows(const MoeShape& s, int64_t materialised, int64_t tokens) {
    const uint64_t seed = fresh_seed();
    std::mt19937_64 rng(seed);
    const std::vector<int64_t> pool = random_pool(s.experts, materialised, rng);
    make_weights(s, pool, seed);
    const int64_t p = tokens * s.top_k, h = s.hidden, blocks = h / 128;
    SCOPED_TRACE("seed " + std::to_string(seed) + ", T " + std::to_string(tokens) + ", P " + std::to_string(p));
    ASSERT_TRUE(moe_experts_takes_quantized_rows(Device::kCUDA, p, gpu_)) << "the GEMV would take these rows";
    const std::vector<int32_t> ids = testing::distinct_ids(s, pool, tokens, rng);  // [T, k]
    const Tensor ids_gpu = testing::i32_tensor(ids, {tokens, s.top_k}).to(Device::kCUDA);
    Tensor x = Tensor::empty({tokens, h}, DType::kBF16, Device::kCUDA);  // [T, H]
    testing::fill_random(x, seed + 1, stream_);
    const Stream stream{stream_};
    const auto grouping = [&] {
      return MoeGrouping{poisoned_gpu({s.experts + 1}, DType::kI32, stream_), poisoned_gpu({p}, DType::kI32, stream_),
                         poisoned_gpu({p}, DType::kI32, stream_)};
    };

    MoeGrouping old_groups = grouping();
    Tensor gathered = poisoned_gpu({p, h}, DType::kBF16, stream_);  // [P, H]
    moe_group_and_gather(ids_gpu, s.experts, x, old_groups, gathered, stream);
    Tensor want_q = poisoned_gpu({p, h}, DType::kF8E4M3, stream_);      // [P, H]: what the old path quantises
    Tensor want_scales = poisoned_gpu({p, blocks}, DType::kF32, stream_);  // [P, H/128]
    quantize_activations_fp8(gathered, ActQuantParams{}, want_q, want_scales, stream);

    MoeGrouping groups = grouping();
    moe_group_by_expert(ids_gpu, s.experts, groups, stream);
    Tensor x_q = poisoned_gpu({tokens, h}, DType::kF8E4M3, stream_);     // [T, H]
    Tensor x_scales = poisoned_gpu({tokens, blocks}, DType::kF32, stream_);  // [T, H/128]
    quantize_activations_fp8(x, ActQuantParams{}, x_q, x_scales, stream);
    Tensor rows_q = poisoned_gpu({p, h}, DType::kF8E4M3, stream_);        // [P, H]
    Tensor rows_scales = poisoned_gpu({p, blocks}, DType::kF32, stream_);  // [P, H/128]
    gather_fp8_rows(groups.sorted_tokens, x_q, x_scales, rows_q, rows_scales, stream);
    MLA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    EXPECT_EQ(byte_mismatches(groups.expert_offsets, old_groups.expert_offsets), 0) << "expert_offsets";
    EXPECT_EQ(byte_mismatches(groups.sorted_tokens, old_groups.sorted_tokens), 0) << "sorted_tokens";
    EXPECT_EQ(byte_mismatches(rows_q, want_q), 0) << "gathered codes";
    EXPECT_EQ(byte_mismatches(rows_scales, want_scales), 0) << "gathered scales";

    const std::vector<int32_t> offsets = [&] {
      const Tensor host = old_groups.expert_offsets.to(Device::kCPU);
      return std::vector<int32_t>(host.data<int32_t>(), host.data<int32_t>() + s.experts + 1);
    }();
    for (const auto& [e0, e1] : {std::pair<int64_t, int64_t>{0, s.experts}, {s.experts / 4, 3 * s.experts / 4}}) {
      SCOPED_TRACE("experts [" + std::to_string(e0) + ", " + std::to_string(e1) + ")");
      const Tensor off_view = old_groups.expert_offsets.slice(e0, e1 + 1);
      const ExpertWeights w_view{gpu_.gate_up.slice(e0, e1), gpu_.down.slice(e0, e1),
                                 gpu_.gate_up_scale.slice(e0, e1), gpu_.down_scale.slice(e0, e1)};
      Tensor out_old = poisoned_gpu({p, h}, DType::kBF16, stream_);  // [P, H]
      Tensor out_new = poisoned_gpu({p, h}, DType::kBF16, stream_);  // [P, H]
      Tensor hidden_old = poisoned_gpu({p, s.inter}, DType::kBF16, stream_);
      Tensor hidden_new = poisoned_gpu({p, s.inter}, DType::kBF16, stream_);
      moe_experts(gathered, off_view, w_view, ActQuantParams{}, hidden_old, out_old, stream);
      moe_experts_quantized(rows_q, rows_scales, off_view, w_view, ActQuantParams{}, hidden_new, out_new, stream);
      MLA_CUDA_CHECK(cudaStreamSynchronize(stream_));
      MLA_CUDA_CHECK(cudaGetLastError());
      const Tensor old_host = out_old.to(Device::kCPU);
      const int64_t first = offsets[e0], last = offsets[e1];
      ASSERT_GT(last, first) << "no rows in the experts checked";
      EXPECT_EQ(count_nonfinite(old_host.slice(first, last)), 0) << "the old path left rows unwritten";
      EXPECT_EQ(byte_mismatches(hidden_new, hidden_old), 0) << "SwiGLU state";
      EXPECT_EQ(byte_mismatches(out_new, old_host), 0) << "output (rows outside the share: poison in both)";
    }
  }

  MoeShape shape_{};
  uint64_t seed_ = 0;
  bool down_only_ = false;
  ExpertWeights gpu_;
  std::map<int64_t, ExpertWeights> host_;
  int steps_ = 0;
};

}  // namespace mlaserve::ops::moe_fp8_test
