// The fixture of the routed experts' GPU tests (moe_experts_cuda_test.cc: the grouped GEMMs,
// the decode tiles, the GEMV, the chains; moe_experts_cutlass_cuda_test.cc: CUTLASS's grouped
// GEMM): DeepSeek's expert shapes, skewed and uniform routings, the weights on both sides, and
// the checks of one step, one product and the GEMV against moe_experts_cpu / linear_cpu. The
// routing and the checks are described in moe_experts_cuda_test.cc.
//
// Tolerances: the same bf16 inputs on both sides, fp32 accumulation on both; the GPU rounds the
// SwiGLU hidden state to bf16 before the down GEMM and the output to bf16 (about 1.7e-3 RMS
// relative each, independent), the CPU keeps both in fp32: ~2.3e-3 expected, 6e-3 over all
// checked rows and 1e-2 for any single row. Through CUTLASS's kernel the layer also rounds gate
// and up to bf16 before silu(g)·u (ops/moe_experts.h at MoeBf16Kernel): ~3.3e-3 expected (host
// emulation at V2-Lite and V3 shapes, 64 rows: 3.3e-3, worst row 3.8e-3), the same bounds.
// One product alone (check_gemm) differs from its reference by the output's rounding (~1.7e-3):
// 3e-3 over the checked rows and 6e-3 for any row, the bounds of the FP8 grouped GEMM's checks.
// The reference of CUTLASS's SwiGLU rounds the fp32 sums to bf16 before silu_mul_cpu, as the GPU
// does; where the GPU's fp32 sum (another summation order) rounds to the other bf16 neighbour
// (0.1-2% of the elements, the note at kPathsRelL2) that adds one step there, at most ~7e-4 to
// the ~1.7e-3. Against the fp32 SwiGLU it is ~2.9e-3 off (emulation: worst row 3.5e-3), bounded
// by the layer's 6e-3 and 1e-2.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "core/cuda_check.h"
#include "gemm_cuda_test_util.h"
#include "moe_test_pool.h"
#include "moe_token_rows_check.h"
#include "ops/cuda/moe_experts_gemv.h"
#include "ops/cuda/moe_grouped_gemm_sm80.h"
#include "ops/linear.h"
#include "ops/moe_experts.h"
#include "ops/moe_route_gather.h"
#include "ops/silu_mul.h"

namespace mlaserve::ops::moe_experts_test {

using testing::count_nonfinite;
using testing::rows_written_outside;
using testing::fill_random;
using testing::fresh_seed;
using testing::gather_rows_f32;
using testing::poison;
using testing::poisoned_gpu;
using testing::random_host;

inline constexpr double kRelL2 = 6e-3, kRow = 1e-2;
inline constexpr double kGemmRelL2 = 3e-3, kGemmRow = 6e-3;  // one product (check_gemm)

using testing::all_experts;
using testing::checked_rows;
using testing::kSmall;
using testing::kV2Lite;
using testing::kV3;
using testing::MoeShape;
using testing::offsets_of;
using testing::random_pool;
using testing::skewed_counts;

inline constexpr MoeShape kV2{160, 5120, 1536, 6};

// Rows per expert for `tokens` tokens each routed to top_k distinct experts drawn uniformly from
// all E (a partial Fisher-Yates shuffle a token), as a router over uniform scores would.
inline std::vector<int32_t> random_counts(const MoeShape& s, int64_t tokens, std::mt19937_64& rng) {
  std::vector<int32_t> counts(static_cast<size_t>(s.experts), 0);
  std::vector<int64_t> ids(static_cast<size_t>(s.experts));
  std::iota(ids.begin(), ids.end(), 0);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < s.top_k; ++j) {
      std::swap(ids[j], ids[std::uniform_int_distribution<int64_t>(j, s.experts - 1)(rng)]);
      counts[static_cast<size_t>(ids[j])] += 1;
    }
  }
  return counts;
}

using sm80::MoeDecodeRing;

// How a check runs the experts: the model's dispatch (moe_experts, MoeExpertsPath::kAuto), one
// path of moe_experts_cuda forced, the grouped GEMM's decode tiles with one cp.async ring
// (moe_experts_sm80_decode), the grouped GEMV with one launch shape (moe_experts_gemv_cuda), or
// the two grouped GEMMs with one kernel forced (moe_grouped_gemm_cuda, gate_up then down).
using gpu::MoeGemvConfig;
using Variant = std::variant<std::monostate, MoeExpertsPath, MoeDecodeRing, MoeGemvConfig, MoeBf16Kernel>;

inline std::string kernel_name(MoeBf16Kernel kernel) {
  switch (kernel) {
    case MoeBf16Kernel::kMmaSync: return "gemms mma.sync";
    case MoeBf16Kernel::kWgmma: return "gemms wgmma";
    case MoeBf16Kernel::kWgmmaM192: return "gemms wgmma m192";
    case MoeBf16Kernel::kCutlassGrouped: return "gemms cutlass grouped";
    case MoeBf16Kernel::kAuto: break;
  }
  return "gemms auto";
}

inline std::string variant_name(const Variant& v) {
  if (const auto* path = std::get_if<MoeExpertsPath>(&v)) {
    return *path == MoeExpertsPath::kGemv ? "gemv" : *path == MoeExpertsPath::kGroupedGemm ? "grouped gemm" : "auto";
  }
  if (const auto* ring = std::get_if<MoeDecodeRing>(&v)) {
    return "decode ring " + std::to_string(static_cast<int>(*ring));
  }
  if (const auto* config = std::get_if<MoeGemvConfig>(&v)) {
    return "gemv ctas/sm " + std::to_string(config->ctas_per_sm) + " depth " + std::to_string(config->depth) +
           " tiles/cta " + std::to_string(config->tiles_per_cta);
  }
  if (const auto* kernel = std::get_if<MoeBf16Kernel>(&v)) return kernel_name(*kernel);
  return "moe_experts";
}

// A small number per variant, for seeds.
inline uint64_t variant_id(const Variant& v) {
  if (const auto* path = std::get_if<MoeExpertsPath>(&v)) return 100 + static_cast<uint64_t>(*path);
  if (const auto* ring = std::get_if<MoeDecodeRing>(&v)) return 1 + static_cast<uint64_t>(*ring);
  if (const auto* config = std::get_if<MoeGemvConfig>(&v)) {
    return 200 + 100 * static_cast<uint64_t>(config->tiles_per_cta) + 10 * static_cast<uint64_t>(config->ctas_per_sm) +
           static_cast<uint64_t>(config->depth);
  }
  if (const auto* kernel = std::get_if<MoeBf16Kernel>(&v)) return 5000 + static_cast<uint64_t>(*kernel);
  return 0;
}

inline const std::vector<Variant> kAllRings = {MoeDecodeRing::kAuto,   MoeDecodeRing::k2PerSm, MoeDecodeRing::k3PerSm,
                                        MoeDecodeRing::k4PerSm, MoeDecodeRing::k5PerSm, MoeDecodeRing::k7PerSm,
                                        MoeDecodeRing::kStream};
// The GEMV through the dispatch (its default launch shape), then with every launch shape of
// kMoeGemvConfigs and two that give the small problems uneven and long runs of tiles (the
// default's grid gives them one tile a CTA), then the grouped GEMMs (last: check_paths compares
// each GEMV against it).
inline const std::vector<Variant> kGemvPaths = [] {
  std::vector<Variant> v = {MoeExpertsPath::kGemv};
  for (const MoeGemvConfig& config : gpu::kMoeGemvConfigs) v.push_back(config);
  v.push_back(MoeGemvConfig{2, 2, 5});   // uneven runs of 4 and 5 tiles on the small problems
  v.push_back(MoeGemvConfig{1, 8, 16});  // the longest runs
  v.push_back(MoeExpertsPath::kGroupedGemm);
  return v;
}();
// The decode-size cases: every ring of the decode tiles and the GEMV.
inline const std::vector<Variant> kRingsAndGemv = [] {
  std::vector<Variant> v = kAllRings;
  v.push_back(MoeExpertsPath::kGemv);
  return v;
}();

// The GEMV path against the grouped GEMMs (check_paths): both are within kRelL2 of the fp32
// reference and differ from each other only by fp32 summation order (the same bf16 products on the
// tensor cores, the same SwiGLU formula, the same bf16 roundings). Not ~1e-4 apart, as this note
// first had it: the hidden elements that round to the other side (~0.1-2%: the tensor cores' fp32
// sums round differently in long chains) shift the down sums, and the output's own rounding turns a
// shift d into one-step flips with probability d / step. A host emulation of the two orders
// (tools/moe_gemv_order_emulation.py, 24 V3 rows) gives 1.3e-4 .. 4.2e-4 relative L2 with
// round-to-nearest fp32 steps and 7.7e-4 .. 1.02e-3 (worst row 1.75e-3) with truncating ones; an
// H200 gave 1.04e-3 at V3, 24 rows (branch moe2, 2026-11-29), over the first bound of 1e-3. Bounds
// 3e-3 / 6e-3: a wrong row, expert or channel is still O(1).
inline constexpr double kPathsRelL2 = 3e-3, kPathsRow = 6e-3;

class MoeExpertsCuda : public testing::Sm90StreamTest {
 protected:
  // Stacked GPU weights with the experts of `pool` random and all others NaN; host copies of
  // an expert's weights are made when the reference first needs them.
  void make_weights(const MoeShape& s, const std::vector<int64_t>& pool, uint64_t seed) {
    shape_ = s;
    seed_ = seed;
    host_.clear();
    gpu_ = ExpertWeights{poisoned_gpu({s.experts, 2 * s.inter, s.hidden}, DType::kBF16, stream_),
                         poisoned_gpu({s.experts, s.hidden, s.inter}, DType::kBF16, stream_), {}, {}};
    for (int64_t e : pool) {
      Tensor gu = gpu_.gate_up.slice(e, e + 1), dn = gpu_.down.slice(e, e + 1);
      fill_random(gu, gate_up_seed(e), stream_);
      fill_random(dn, down_seed(e), stream_);
    }
  }

  uint64_t gate_up_seed(int64_t e) const { return seed_ + 1000 + 2 * static_cast<uint64_t>(e); }
  uint64_t down_seed(int64_t e) const { return seed_ + 1001 + 2 * static_cast<uint64_t>(e); }

  // Expert e's weights on the host as a one-expert stack ([1, 2Im, H], [1, H, Im]).
  const ExpertWeights& host_expert(int64_t e) {
    auto it = host_.find(e);
    if (it != host_.end()) return it->second;
    ExpertWeights w{random_host({1, 2 * shape_.inter, shape_.hidden}, DType::kBF16, gate_up_seed(e)),
                    random_host({1, shape_.hidden, shape_.inter}, DType::kBF16, down_seed(e)), {}, {}};
    return host_.emplace(e, std::move(w)).first->second;
  }

  // Runs the experts through `v` on the stream (see Variant).
  void run_variant(const Variant& v, const Tensor& x, const Tensor& offsets, const ExpertWeights& w, Tensor& hidden,
                   Tensor& out) {
    if (const auto* path = std::get_if<MoeExpertsPath>(&v)) {
      moe_experts_cuda(x, offsets, w, hidden, out, stream_, *path);
    } else if (const auto* ring = std::get_if<MoeDecodeRing>(&v)) {
      moe_experts_sm80_decode(x, offsets, w, hidden, out, *ring, stream_);
    } else if (const auto* config = std::get_if<MoeGemvConfig>(&v)) {
      moe_experts_gemv_cuda(x, offsets, w, ActQuantParams{}, hidden, out, stream_, *config);
    } else if (const auto* kernel = std::get_if<MoeBf16Kernel>(&v)) {
      moe_grouped_gemm_cuda(x, offsets, w.gate_up, /*swiglu=*/true, hidden, stream_, *kernel);
      moe_grouped_gemm_cuda(hidden, offsets, w.down, /*swiglu=*/false, out, stream_, *kernel);
    } else {
      moe_experts(x, offsets, w, ActQuantParams{}, hidden, out, Stream{stream_});
    }
  }

  // The op's output [P, H] (on the host) into a freshly poisoned tensor, through `v` with the
  // weights `w` (all of gpu_, or a view of some of its experts with offsets to match).
  Tensor run_op(const Tensor& x, const Tensor& offsets, const Variant& v, const ExpertWeights& w) {
    const int64_t rows = x.dim(0);
    Tensor out = poisoned_gpu({rows, shape_.hidden}, DType::kBF16, stream_);               // [P, H]
    Tensor hidden = poisoned_gpu({rows, shape_.inter}, DType::kBF16, stream_);             // [P, Im] workspace
    run_variant(v, x, offsets, w, hidden, out);
    MLA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return out.to(Device::kCPU);
  }
  Tensor run_op(const Tensor& x, const Tensor& offsets, const Variant& v) { return run_op(x, offsets, v, gpu_); }

  using References = std::vector<std::pair<std::vector<int64_t>, Tensor>>;

  // The checked rows of each active expert of [e0, e1) and their CPU reference [n, H] (f32): all
  // rows when check_all, else the first, the last and one random row.
  References references(const std::vector<int32_t>& offsets, const Tensor& x_host, int64_t e0, int64_t e1,
                        bool check_all, std::mt19937_64& rng) {
    References refs;
    for (int64_t e = e0; e < e1; ++e) {
      const int64_t begin = offsets[e], end = offsets[e + 1];
      if (begin == end) continue;
      std::vector<int64_t> rows_e = checked_rows(begin, end, check_all, rng);
      const auto n = static_cast<int64_t>(rows_e.size());
      const Tensor x_rows = gather_rows_f32(x_host, rows_e);  // [n, H]
      Tensor ref = Tensor::empty({n, shape_.hidden}, DType::kF32);
      const Tensor one_expert = testing::i32_tensor({0, static_cast<int32_t>(n)}, {2});
      moe_experts_cpu(x_rows, one_expert, host_expert(e), ActQuantParams{}, ref);
      refs.emplace_back(std::move(rows_e), std::move(ref));
    }
    return refs;
  }

  // out_host's checked rows (every row of `refs`) against their CPU reference.
  static testing::RowErrors reference_errors(const Tensor& out_host, const References& refs) {
    testing::RowErrorAccumulator errors;
    for (const auto& [rows_e, ref] : refs) {
      const Tensor got = gather_rows_f32(out_host, rows_e);
      const int64_t cols = ref.dim(1);
      for (size_t i = 0; i < rows_e.size(); ++i) {
        const auto off = static_cast<int64_t>(i) * cols;
        errors.add(got.data<float>() + off, ref.data<float>() + off, cols, rows_e[i]);
      }
    }
    return errors.result();
  }

  // One step: x [P, H] random, routed by counts; the GPU op (the model's dispatch, or each of
  // `variants`) against the CPU reference on the checked rows (all of them when check_all). Each
  // variant runs twice and must give the same bits both times.
  void check_step(const std::vector<int32_t>& counts, uint64_t x_seed, bool check_all,
                  const std::vector<Variant>& variants = {Variant{}}) {
    const MoeShape& s = shape_;
    const std::vector<int32_t> offsets = offsets_of(counts);
    const int64_t rows = offsets.back();
    SCOPED_TRACE("seed " + std::to_string(seed_) + ", P " + std::to_string(rows) + " rows over " +
                 std::to_string(s.experts) + " experts");

    Tensor x_gpu = Tensor::empty({rows, s.hidden}, DType::kBF16, Device::kCUDA);  // [P, H]
    fill_random(x_gpu, x_seed, stream_);
    const Tensor x_host = random_host({rows, s.hidden}, DType::kBF16, x_seed);
    const Tensor off_gpu = testing::i32_tensor(offsets, {s.experts + 1}).to(Device::kCUDA);

    std::mt19937_64 rng(x_seed);
    const auto refs = references(offsets, x_host, 0, s.experts, check_all, rng);

    for (const Variant& v : variants) {
      const std::string name = variant_name(v);
      SCOPED_TRACE(name);
      const Tensor out_host = run_op(x_gpu, off_gpu, v);
      EXPECT_EQ(count_nonfinite(out_host), 0) << "outputs unwritten (poison) or not finite";
      const Tensor again = run_op(x_gpu, off_gpu, v);
      EXPECT_EQ(std::memcmp(out_host.raw(), again.raw(), static_cast<size_t>(rows * s.hidden) * 2), 0)
          << "two runs differ";

      testing::expect_close(reference_errors(out_host, refs), kRelL2, kRow,
                            "step " + std::to_string(++steps_) + " (" + name + "): E " + std::to_string(s.experts) +
                                " H " + std::to_string(s.hidden) + " P " + std::to_string(rows));
    }
  }

  // One step through the forced paths (the grouped GEMV with its default and every launch shape,
  // the grouped GEMMs: kGemvPaths) over the experts [e0, e1) only, as a rank holding that share
  // runs them (views of the stacked weights and of the offsets, ffn_block.cc): the rows of those
  // experts against the CPU reference (all, or three an expert), every other row of out left as
  // poisoned, each path twice with the same bits, and each GEMV close to the grouped GEMMs
  // (kPathsRelL2).
  void check_paths(const std::vector<int32_t>& counts, uint64_t x_seed, int64_t e0, int64_t e1,
                   bool check_all = true) {
    const MoeShape& s = shape_;
    const std::vector<int32_t> offsets = offsets_of(counts);
    const int64_t rows = offsets.back(), first = offsets[e0], last = offsets[e1];
    const std::string where = "paths P " + std::to_string(rows) + " experts [" + std::to_string(e0) + ", " +
                              std::to_string(e1) + ") of " + std::to_string(s.experts) + " H " +
                              std::to_string(s.hidden);
    SCOPED_TRACE("seed " + std::to_string(seed_) + ", x seed " + std::to_string(x_seed) + ", " + where);

    Tensor x_gpu = Tensor::empty({rows, s.hidden}, DType::kBF16, Device::kCUDA);  // [P, H]
    fill_random(x_gpu, x_seed, stream_);
    const Tensor x_host = random_host({rows, s.hidden}, DType::kBF16, x_seed);
    const Tensor off_gpu = testing::i32_tensor(offsets, {s.experts + 1}).to(Device::kCUDA);
    const Tensor off_view = off_gpu.slice(e0, e1 + 1);  // [e1 - e0 + 1]
    const ExpertWeights w_view{gpu_.gate_up.slice(e0, e1), gpu_.down.slice(e0, e1), {}, {}};
    std::mt19937_64 rng(x_seed);
    const auto refs = references(offsets, x_host, e0, e1, check_all, rng);

    std::vector<Tensor> outs;
    for (const Variant& v : kGemvPaths) {
      const std::string name = where + ", " + variant_name(v);
      const Tensor out_host = run_op(x_gpu, off_view, v, w_view);
      const Tensor again = run_op(x_gpu, off_view, v, w_view);
      EXPECT_EQ(std::memcmp(out_host.raw(), again.raw(), static_cast<size_t>(rows * s.hidden) * 2), 0)
          << name << ": two runs differ";
      EXPECT_EQ(rows_written_outside(out_host, first, last), 0)
          << name << ": rows outside the experts' range were written";
      EXPECT_EQ(count_nonfinite(out_host.slice(first, last)), 0)
          << name << ": outputs unwritten (poison) or not finite";
      testing::expect_close(reference_errors(out_host, refs), kRelL2, kRow, name);
      outs.push_back(out_host);
    }
    const Tensor gemm = outs.back().slice(first, last).to_f32();
    for (size_t i = 0; i + 1 < outs.size(); ++i) {
      testing::RowErrorAccumulator between;
      const Tensor gemv = outs[i].slice(first, last).to_f32();
      for (int64_t r = 0; r < last - first; ++r) {
        between.add(gemv.data<float>() + r * s.hidden, gemm.data<float>() + r * s.hidden, s.hidden, first + r);
      }
      testing::expect_close(between.result(), kPathsRelL2, kPathsRow,
                            where + ", " + variant_name(kGemvPaths[i]) + " vs grouped gemm");
    }
  }

  // One grouped GEMM through moe_grouped_gemm_cuda with `kernel`: plain at the down projection's
  // shape (K = Im, N = H) or SwiGLU at gate_up's (K = H, weight rows 2·Im, N = Im), a [P, K]
  // random, over the experts [e0, e1) only (views of the weights and the offsets, as a rank
  // holding that share passes them). The rows outside [offsets[e0], offsets[e1]) must stay
  // poisoned, two runs give the same bits, and the checked rows (all, or three an expert) match
  // the CPU's fp32 sums (linear_cpu on the same bf16 values; silu_mul_cpu on them for SwiGLU, on
  // the sums rounded to bf16 for CUTLASS's split SwiGLU) within kGemmRelL2 / kGemmRow; the split
  // SwiGLU also against the fp32 SwiGLU (the note at the top).
  void check_gemm(const std::vector<int32_t>& counts, uint64_t x_seed, bool check_all, MoeBf16Kernel kernel,
                  bool swiglu, int64_t e0 = 0, int64_t e1 = -1) {
    const MoeShape& s = shape_;
    if (e1 < 0) e1 = s.experts;
    const std::vector<int32_t> offsets = offsets_of(counts);
    const int64_t rows = offsets.back(), first = offsets[e0], last = offsets[e1];
    const int64_t k = swiglu ? s.hidden : s.inter, n = swiglu ? s.inter : s.hidden;
    const int64_t w_rows = swiglu ? 2 * s.inter : s.hidden;
    const bool split = swiglu && kernel == MoeBf16Kernel::kCutlassGrouped;
    const std::string what = "gemm " + std::to_string(++steps_) + " P " + std::to_string(rows) + " experts [" +
                             std::to_string(e0) + ", " + std::to_string(e1) + ") of " + std::to_string(s.experts) +
                             " H " + std::to_string(s.hidden) + ", " + kernel_name(kernel) +
                             (swiglu ? " swiglu" : " plain");
    SCOPED_TRACE("seed " + std::to_string(seed_) + ", x seed " + std::to_string(x_seed) + ", " + what);

    Tensor a_gpu = Tensor::empty({rows, k}, DType::kBF16, Device::kCUDA);  // [P, K]
    fill_random(a_gpu, x_seed, stream_);
    const Tensor a_host = random_host({rows, k}, DType::kBF16, x_seed);
    const Tensor off_view = testing::i32_tensor(offsets, {s.experts + 1}).to(Device::kCUDA).slice(e0, e1 + 1);
    const Tensor b_view = (swiglu ? gpu_.gate_up : gpu_.down).slice(e0, e1);  // [e1 - e0, R, K]
    const auto run = [&] {
      Tensor out = poisoned_gpu({rows, n}, DType::kBF16, stream_);  // [P, N]
      moe_grouped_gemm_cuda(a_gpu, off_view, b_view, swiglu, out, stream_, kernel);
      MLA_CUDA_CHECK(cudaStreamSynchronize(stream_));
      return out.to(Device::kCPU);
    };
    const Tensor out_host = run();
    const Tensor again = run();
    EXPECT_EQ(std::memcmp(out_host.raw(), again.raw(), static_cast<size_t>(rows * n) * 2), 0) << "two runs differ";
    EXPECT_EQ(count_nonfinite(out_host.slice(first, last)), 0) << "outputs unwritten (poison) or not finite";
    EXPECT_EQ(rows_written_outside(out_host, first, last), 0) << "rows outside the experts' range were written";

    std::mt19937_64 rng(x_seed);
    testing::RowErrorAccumulator modelled, fp32_swiglu;
    for (int64_t e = e0; e < e1; ++e) {
      if (counts[e] == 0) continue;
      const std::vector<int64_t> rows_e = checked_rows(offsets[e], offsets[e + 1], check_all, rng);
      const auto m = static_cast<int64_t>(rows_e.size());
      const ExpertWeights& w = host_expert(e);
      Tensor sums = Tensor::empty({m, w_rows}, DType::kF32);  // [m, R]
      linear_cpu(gather_rows_f32(a_host, rows_e), (swiglu ? w.gate_up : w.down).reshape({w_rows, k}), sums);
      Tensor want = sums, want_gpu = sums;  // [m, N]: the fp32 reference, the GPU's arithmetic
      if (swiglu) {
        want = Tensor::empty({m, n}, DType::kF32);
        silu_mul_cpu(sums, want);
        want_gpu = want;
        if (split) {
          want_gpu = Tensor::empty({m, n}, DType::kF32);
          silu_mul_cpu(sums.to_dtype(DType::kBF16).to_f32(), want_gpu);
        }
      }
      const Tensor got = gather_rows_f32(out_host, rows_e);
      for (int64_t i = 0; i < m; ++i) {
        modelled.add(got.data<float>() + i * n, want_gpu.data<float>() + i * n, n, rows_e[i]);
        fp32_swiglu.add(got.data<float>() + i * n, want.data<float>() + i * n, n, rows_e[i]);
      }
    }
    testing::expect_close(modelled.result(), kGemmRelL2, kGemmRow, what);
    if (split) testing::expect_close(fp32_swiglu.result(), kRelL2, kRow, what + " vs fp32 SwiGLU");
  }

  // One forced kernel: both products (check_gemm) over the experts [e0, e1) (all by default),
  // then, over all experts, the layer as its two launches (check_step).
  void check_forced(MoeBf16Kernel kernel, const std::vector<int32_t>& counts, uint64_t seed, bool check_all,
                    int64_t e0 = 0, int64_t e1 = -1) {
    if (e1 < 0) e1 = shape_.experts;
    check_gemm(counts, seed, check_all, kernel, /*swiglu=*/false, e0, e1);
    check_gemm(counts, seed + 1, check_all, kernel, /*swiglu=*/true, e0, e1);
    if (e0 == 0 && e1 == shape_.experts) check_step(counts, seed + 2, check_all, {kernel});
  }
  // CUTLASS's grouped kernel through check_forced.
  void check_cutlass(const std::vector<int32_t>& counts, uint64_t seed, bool check_all, int64_t e0 = 0,
                     int64_t e1 = -1) {
    check_forced(MoeBf16Kernel::kCutlassGrouped, counts, seed, check_all, e0, e1);
  }

  // The token-rows GEMV against the gathered one (moe_token_rows_check.h): `pool_size` experts of s
  // with weights, each of token_counts, then experts of more rows than tokens when `repeats`.
  void check_token_rows(const MoeShape& s, int64_t pool_size, const std::vector<int64_t>& token_counts, bool repeats) {
    const auto weights = [&](const std::vector<int64_t>& pool, uint64_t seed) { make_weights(s, pool, seed); };
    testing::check_token_rows_case(s, pool_size, token_counts, repeats, fresh_seed(), weights, gpu_, stream_);
  }

  // The GEMV at a model's shape: T = 1 .. 4 tokens routed over a pool of top_k + 3 experts (tokens
  // share experts: 2 .. T rows an expert at T >= 2), half the pool in [E/4, 3E/4): every step over
  // all experts and over that share only (other rows untouched); then, forced at a prefill size
  // (skewed routing of 64 tokens: experts of up to ~100 rows, passes of 8 rows), three rows an
  // expert.
  void check_gemv_model(const MoeShape& s) {
    const uint64_t seed = fresh_seed();
    std::mt19937_64 rng(seed);
    const testing::ExpertPool drawn = testing::gemv_test_pool(s.experts, s.top_k, rng);
    const int64_t e0 = drawn.share_begin, e1 = drawn.share_end;
    std::vector<int64_t> pool = drawn.experts;
    make_weights(s, pool, seed);
    for (int64_t t = 1; t <= 4; ++t) {
      const std::vector<int32_t> counts = testing::decode_counts(s.experts, s.top_k, pool, t, rng);
      check_paths(counts, seed + 10 * static_cast<uint64_t>(t), 0, s.experts);
      check_paths(counts, seed + 10 * static_cast<uint64_t>(t) + 1, e0, e1);
    }
    check_paths(skewed_counts(s, pool, 64, rng), seed + 100, 0, s.experts, /*check_all=*/false);
  }

  // The model-shaped test: a pool of `materialised` experts with weights, then one step per
  // token count.
  void check_model(const MoeShape& s, int64_t materialised, const std::vector<int64_t>& token_counts) {
    const uint64_t seed = fresh_seed();
    std::mt19937_64 rng(seed);
    const std::vector<int64_t> pool = random_pool(s.experts, materialised, rng);
    make_weights(s, pool, seed);
    for (size_t i = 0; i < token_counts.size(); ++i) {
      check_step(skewed_counts(s, pool, token_counts[i], rng), seed + 1 + i, /*check_all=*/false);
    }
  }

  // check_chain through the model's dispatch, the forced paths (every GEMV launch shape) and
  // every decode ring.
  void check_chain_every_ring(const MoeShape& s, int64_t tokens) {
    check_chain(s, tokens, Variant{});
    for (const Variant& path : kGemvPaths) check_chain(s, tokens, path);
    for (const Variant& ring : kAllRings) check_chain(s, tokens, ring);
  }

  // The chain of the note at the top for `tokens` tokens, through `v` (moe_experts_cuda's
  // dispatch, a forced path, or the decode tiles with a ring). Every expert has weights (the
  // router picks any).
  void check_chain(const MoeShape& s, int64_t tokens, const Variant& v) {
    const uint64_t seed = seed_ + 7 * static_cast<uint64_t>(tokens) + variant_id(v);
    const int64_t pairs = tokens * s.top_k;
    const std::string where = "chain T " + std::to_string(tokens) + " E " + std::to_string(s.experts) + " H " +
                              std::to_string(s.hidden) + ", " + variant_name(v);
    SCOPED_TRACE("seed " + std::to_string(seed) + ", " + where);
    Tensor x = Tensor::empty({tokens, s.hidden}, DType::kBF16, Device::kCUDA);           // [T, H]
    Tensor w_router = Tensor::empty({s.experts, s.hidden}, DType::kBF16, Device::kCUDA);  // [E, H]
    fill_random(x, seed, stream_);
    fill_random(w_router, seed + 1, stream_);
    RouterParams params;
    params.top_k = s.top_k;
    Tensor logits = poisoned_gpu({tokens, s.experts}, DType::kF32, stream_);  // [T, E]
    MoeRouteGatherOutputs routed{
        {poisoned_gpu({tokens, s.top_k}, DType::kF32, stream_), poisoned_gpu({tokens, s.top_k}, DType::kI32, stream_)},
        {poisoned_gpu({s.experts + 1}, DType::kI32, stream_), poisoned_gpu({pairs}, DType::kI32, stream_),
         poisoned_gpu({pairs}, DType::kI32, stream_)},
        poisoned_gpu({pairs, s.hidden}, DType::kBF16, stream_)};  // gathered [P, H]
    Tensor hidden = poisoned_gpu({pairs, s.inter}, DType::kBF16, stream_);  // [P, Im]
    Tensor out = poisoned_gpu({pairs, s.hidden}, DType::kBF16, stream_);    // [P, H]
    Tensor& offsets = routed.grouping.expert_offsets;

    const std::vector<Tensor> got = eager_then_graph(
        [&] {
          linear_cuda(x, w_router, logits, stream_);
          moe_route_and_gather_cuda(logits, Tensor(), params, x, routed, stream_);
          if (std::holds_alternative<std::monostate>(v)) {
            moe_experts_cuda(routed.gathered, offsets, gpu_, hidden, out, stream_);
          } else {
            run_variant(v, routed.gathered, offsets, gpu_, hidden, out);
          }
        },
        {&logits, &routed.route.weights, &routed.route.expert_ids, &offsets, &routed.grouping.sorted_pairs,
         &routed.grouping.sorted_tokens, &routed.gathered, &hidden, &out});
    const Tensor &off_host = got[3], &gathered_host = got[6], &out_host = got[8];
    ASSERT_EQ(off_host.data<int32_t>()[0], 0) << where;
    ASSERT_EQ(off_host.data<int32_t>()[s.experts], pairs) << where << ": the routing wrote no offsets";
    EXPECT_EQ(count_nonfinite(out_host), 0) << where << ": outputs unwritten (poison) or not finite";

    const int32_t* off = off_host.data<int32_t>();
    std::mt19937_64 unused(0);  // every row is checked: none is drawn
    const References refs = references(std::vector<int32_t>(off, off + s.experts + 1), gathered_host, 0, s.experts,
                                       /*check_all=*/true, unused);
    testing::expect_close(reference_errors(out_host, refs), kRelL2, kRow, where);
  }

  MoeShape shape_{};
  uint64_t seed_ = 0;
  ExpertWeights gpu_;
  std::map<int64_t, ExpertWeights> host_;
  int steps_ = 0;  // names the recorded errors of each check_step
};

// Rows per expert `each` for the first `active` experts of `pool` (a decode step of `each`
// tokens where those experts got every token), every other expert empty.
inline std::vector<int32_t> uniform_counts(const MoeShape& s, const std::vector<int64_t>& pool, int64_t active,
                                           int32_t each) {
  std::vector<int32_t> counts(static_cast<size_t>(s.experts), 0);
  for (int64_t i = 0; i < active; ++i) counts[static_cast<size_t>(pool[static_cast<size_t>(i)])] = each;
  return counts;
}

}  // namespace mlaserve::ops::moe_experts_test
