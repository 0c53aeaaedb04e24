// moe_experts_cuda (grouped GEMMs, SwiGLU fused, row ranges read on the device) against
// moe_experts_cpu, on fresh random bf16 inputs at DeepSeek's expert shapes: V2-Lite (64
// experts, H 2048, Im 1408, k 6) and V3 (256 experts, H 7168, Im 2048, k 8) with T = 1, 64,
// 256, 1024, 4096 (V2-Lite) and 1, 64, 1024, 4096 (V3) tokens, and small problems that run every
// tile configuration under compute-sanitizer. Mean rows per active expert > 16 (V2-Lite 256 and
// up, V3 1024 and up, SmallMidTiles, SmallPrefillTiles) run the Hopper wgmma kernel
// (moe_grouped_gemm_sm90.cuh), smaller ones the mma.sync decode tiles. The mma.sync mid tiles
// (H not a multiple of 256) have no case here. The decode tiles' rings (MoeDecodeRing, one
// cp.async depth per grid size) run each, through moe_experts_sm80_decode, at 1, 2 and 8 rows
// per expert at the V2-Lite, V2 and V3 shapes and on the small problem (SmallDecodeRings, for
// compute-sanitizer); every variant runs twice and must give the same bits both times.
//
// Routing is skewed and leaves experts empty: rows go to the experts of a random pool with
// weights 1 / (rank + 1), a quarter of the pool gets none, and T = 1 routes to k distinct
// experts as a real decode step does. Weights exist (random) only for the pool; every other
// expert's weights are NaN, so a kernel that used a wrong expert, or an empty expert's tile,
// fails. Outputs are poisoned first and must be fully written. Of the large problems the CPU
// checks each active expert's first, last and one random row (V3 is 88 MFLOP a row): a tile that
// straddles experts, a lost M tile or a wrong N tile shows there.
//
// Chains (the decode tiles under programmatic dependent launch): the engine's MoE chain at one
// to a few tokens, router GEMV (f32 logits) -> moe_route_and_gather (routing, expert offsets,
// gathered rows) -> gate_up -> down, every kernel launched with PDL and each reading what the one
// before wrote. gate_up waits before it reads the offsets; the down GEMM reads them (written two
// kernels back) and issues its first weight k-tiles before its wait. Every output is poisoned
// (0xFF: offsets of -1, which clamp to empty experts) before each run; the experts' output must
// match the CPU reference on the GPU's own offsets and gathered rows, and a CUDA graph of the
// chain replayed twice must reproduce the eager run bit for bit.
//
// Tolerances: the same bf16 inputs on both sides, fp32 accumulation on both; the GPU rounds the
// SwiGLU hidden state to bf16 before the down GEMM and the output to bf16 (about 1.6e-3 RMS
// relative each, independent), the CPU keeps both in fp32: ~2.3e-3 expected, 6e-3 over all
// checked rows and 1e-2 for any single row.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "gemm_cuda_test_util.h"
#include "ops/cuda/moe_grouped_gemm_sm80.h"
#include "ops/linear.h"
#include "ops/moe_experts.h"
#include "ops/moe_route_gather.h"

namespace mlaserve::ops {
namespace {

using testing::count_nonfinite;
using testing::fill_random;
using testing::fresh_seed;
using testing::gather_rows_f32;
using testing::poison;
using testing::poisoned_gpu;
using testing::random_host;

constexpr double kRelL2 = 6e-3, kRow = 1e-2;

struct MoeShape {
  int64_t experts, hidden, inter, top_k;
};

constexpr MoeShape kV2Lite{64, 2048, 1408, 6};
constexpr MoeShape kV3{256, 7168, 2048, 8};
constexpr MoeShape kV2{160, 5120, 1536, 6};
constexpr MoeShape kSmall{8, 512, 256, 2};

// Rows per expert for one step of `tokens` tokens routed to top_k experts each, drawn from
// `pool` only (see the note at the top).
std::vector<int32_t> skewed_counts(const MoeShape& s, const std::vector<int64_t>& pool, int64_t tokens,
                                   std::mt19937_64& rng) {
  std::vector<int32_t> counts(static_cast<size_t>(s.experts), 0);
  std::vector<int64_t> order = pool;
  std::shuffle(order.begin(), order.end(), rng);
  const int64_t rows = tokens * s.top_k;
  if (tokens == 1) {  // one token: k distinct experts, one row each
    for (int64_t i = 0; i < s.top_k; ++i) counts[order[i % order.size()]] += 1;
    return counts;
  }
  const int64_t active = std::max<int64_t>(1, static_cast<int64_t>(order.size()) * 3 / 4);
  std::vector<double> weights;
  for (int64_t i = 0; i < active; ++i) weights.push_back(1.0 / static_cast<double>(i + 1));
  std::discrete_distribution<int64_t> pick(weights.begin(), weights.end());
  for (int64_t r = 0; r < rows; ++r) counts[order[pick(rng)]] += 1;
  return counts;
}

using sm80::MoeDecodeRing;
const std::vector<MoeDecodeRing> kAllRings = {MoeDecodeRing::kAuto,    MoeDecodeRing::k2PerSm, MoeDecodeRing::k3PerSm,
                                              MoeDecodeRing::k4PerSm,  MoeDecodeRing::k5PerSm, MoeDecodeRing::k7PerSm,
                                              MoeDecodeRing::kStream};

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

  // The op's output [P, H] (on the host) into a freshly poisoned tensor: the model's dispatch
  // (moe_experts) without a ring, the decode tiles with that ring otherwise.
  Tensor run_op(const Tensor& x, const Tensor& offsets, std::optional<sm80::MoeDecodeRing> ring) {
    const int64_t rows = x.dim(0);
    Tensor out = poisoned_gpu({rows, shape_.hidden}, DType::kBF16, stream_);               // [P, H]
    Tensor hidden = poisoned_gpu({rows, shape_.inter}, DType::kBF16, stream_);             // [P, Im] workspace
    if (ring) {
      moe_experts_sm80_decode(x, offsets, gpu_, hidden, out, *ring, stream_);
    } else {
      moe_experts(x, offsets, gpu_, ActQuantParams{}, hidden, out, Stream{stream_});
    }
    MLA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return out.to(Device::kCPU);
  }

  // One step: x [P, H] random, routed by counts; the GPU op (the model's dispatch, or the decode
  // tiles with each of `rings`) against the CPU reference on the checked rows (all of them when
  // check_all). Each variant runs twice and must give the same bits both times.
  void check_step(const std::vector<int32_t>& counts, uint64_t x_seed, bool check_all,
                  const std::vector<sm80::MoeDecodeRing>& rings = {}) {
    const MoeShape& s = shape_;
    std::vector<int32_t> offsets(counts.size() + 1, 0);
    std::partial_sum(counts.begin(), counts.end(), offsets.begin() + 1);
    const int64_t rows = offsets.back();
    SCOPED_TRACE("seed " + std::to_string(seed_) + ", P " + std::to_string(rows) + " rows over " +
                 std::to_string(s.experts) + " experts");

    Tensor x_gpu = Tensor::empty({rows, s.hidden}, DType::kBF16, Device::kCUDA);  // [P, H]
    fill_random(x_gpu, x_seed, stream_);
    const Tensor x_host = random_host({rows, s.hidden}, DType::kBF16, x_seed);
    const Tensor off_gpu = testing::i32_tensor(offsets, {s.experts + 1}).to(Device::kCUDA);

    // The checked rows of each active expert and their reference [n, H] (f32).
    std::mt19937_64 rng(x_seed);
    std::vector<std::pair<std::vector<int64_t>, Tensor>> refs;
    for (int64_t e = 0; e < s.experts; ++e) {
      const int64_t begin = offsets[e], end = offsets[e + 1];
      if (begin == end) continue;
      std::vector<int64_t> rows_e;
      if (check_all) {
        for (int64_t r = begin; r < end; ++r) rows_e.push_back(r);
      } else {
        const std::set<int64_t> picked = {begin, end - 1, std::uniform_int_distribution<int64_t>(begin, end - 1)(rng)};
        rows_e.assign(picked.begin(), picked.end());
      }
      const auto n = static_cast<int64_t>(rows_e.size());
      const Tensor x_rows = gather_rows_f32(x_host, rows_e);  // [n, H]
      Tensor ref = Tensor::empty({n, s.hidden}, DType::kF32);
      const Tensor one_expert = testing::i32_tensor({0, static_cast<int32_t>(n)}, {2});
      moe_experts_cpu(x_rows, one_expert, host_expert(e), ActQuantParams{}, ref);
      refs.emplace_back(std::move(rows_e), std::move(ref));
    }

    std::vector<std::optional<sm80::MoeDecodeRing>> variants(rings.begin(), rings.end());
    if (variants.empty()) variants.push_back(std::nullopt);
    for (const std::optional<sm80::MoeDecodeRing>& ring : variants) {
      const std::string name = ring ? "decode ring " + std::to_string(static_cast<int>(*ring)) : "moe_experts";
      SCOPED_TRACE(name);
      const Tensor out_host = run_op(x_gpu, off_gpu, ring);
      EXPECT_EQ(count_nonfinite(out_host), 0) << "outputs unwritten (poison) or not finite";
      const Tensor again = run_op(x_gpu, off_gpu, ring);
      EXPECT_EQ(std::memcmp(out_host.raw(), again.raw(), static_cast<size_t>(rows * s.hidden) * 2), 0)
          << "two runs differ";

      testing::RowErrorAccumulator errors;
      for (const auto& [rows_e, ref] : refs) {
        const Tensor got = gather_rows_f32(out_host, rows_e);
        for (size_t i = 0; i < rows_e.size(); ++i) {
          const auto off = static_cast<int64_t>(i) * s.hidden;
          errors.add(got.data<float>() + off, ref.data<float>() + off, s.hidden, rows_e[i]);
        }
      }
      testing::expect_close(errors.result(), kRelL2, kRow,
                            "step " + std::to_string(++steps_) + " (" + name + "): E " + std::to_string(s.experts) +
                                " H " + std::to_string(s.hidden) + " P " + std::to_string(rows));
    }
  }

  // The model-shaped test: a pool of `materialised` experts with weights, then one step per
  // token count.
  void check_model(const MoeShape& s, int64_t materialised, const std::vector<int64_t>& token_counts) {
    const uint64_t seed = fresh_seed();
    std::mt19937_64 rng(seed);
    std::vector<int64_t> all(static_cast<size_t>(s.experts));
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    const std::vector<int64_t> pool(all.begin(), all.begin() + materialised);
    make_weights(s, pool, seed);
    for (size_t i = 0; i < token_counts.size(); ++i) {
      check_step(skewed_counts(s, pool, token_counts[i], rng), seed + 1 + i, /*check_all=*/false);
    }
  }

  // check_chain through the model's dispatch and then through every decode ring.
  void check_chain_every_ring(const MoeShape& s, int64_t tokens) {
    check_chain(s, tokens, std::nullopt);
    for (MoeDecodeRing ring : kAllRings) check_chain(s, tokens, ring);
  }

  // The chain of the note at the top for `tokens` tokens, through moe_experts_cuda (no ring) or
  // the decode tiles with `ring`. Every expert has weights (the router picks any).
  void check_chain(const MoeShape& s, int64_t tokens, std::optional<sm80::MoeDecodeRing> ring) {
    const uint64_t seed = seed_ + 7 * static_cast<uint64_t>(tokens) + (ring ? static_cast<uint64_t>(*ring) + 1 : 0);
    const int64_t pairs = tokens * s.top_k;
    const std::string where = "chain T " + std::to_string(tokens) + " E " + std::to_string(s.experts) + " H " +
                              std::to_string(s.hidden) +
                              (ring ? ", decode ring " + std::to_string(static_cast<int>(*ring)) : ", moe_experts");
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
          if (ring) {
            moe_experts_sm80_decode(routed.gathered, offsets, gpu_, hidden, out, *ring, stream_);
          } else {
            moe_experts_cuda(routed.gathered, offsets, gpu_, hidden, out, stream_);
          }
        },
        {&logits, &routed.route.weights, &routed.route.expert_ids, &offsets, &routed.grouping.sorted_pairs,
         &routed.grouping.sorted_tokens, &routed.gathered, &hidden, &out});
    const Tensor &off_host = got[3], &gathered_host = got[6], &out_host = got[8];
    ASSERT_EQ(off_host.data<int32_t>()[0], 0) << where;
    ASSERT_EQ(off_host.data<int32_t>()[s.experts], pairs) << where << ": the routing wrote no offsets";
    EXPECT_EQ(count_nonfinite(out_host), 0) << where << ": outputs unwritten (poison) or not finite";

    testing::RowErrorAccumulator errors;
    for (int64_t e = 0; e < s.experts; ++e) {
      const int32_t begin = off_host.data<int32_t>()[e], end = off_host.data<int32_t>()[e + 1];
      if (begin == end) continue;
      std::vector<int64_t> rows_e;
      for (int64_t r = begin; r < end; ++r) rows_e.push_back(r);
      const auto n = static_cast<int64_t>(rows_e.size());
      Tensor ref = Tensor::empty({n, s.hidden}, DType::kF32);
      const Tensor one_expert = testing::i32_tensor({0, static_cast<int32_t>(n)}, {2});
      moe_experts_cpu(gather_rows_f32(gathered_host, rows_e), one_expert, host_expert(e), ActQuantParams{}, ref);
      const Tensor got_rows = gather_rows_f32(out_host, rows_e);
      for (int64_t i = 0; i < n; ++i) {
        errors.add(got_rows.data<float>() + i * s.hidden, ref.data<float>() + i * s.hidden, s.hidden, rows_e[i]);
      }
    }
    testing::expect_close(errors.result(), kRelL2, kRow, where);
  }

  MoeShape shape_{};
  uint64_t seed_ = 0;
  ExpertWeights gpu_;
  std::map<int64_t, ExpertWeights> host_;
  int steps_ = 0;  // names the recorded errors of each check_step
};

// Rows per expert `each` for the first `active` experts of `pool` (a decode step of `each`
// tokens where those experts got every token), every other expert empty.
std::vector<int32_t> uniform_counts(const MoeShape& s, const std::vector<int64_t>& pool, int64_t active, int32_t each) {
  std::vector<int32_t> counts(static_cast<size_t>(s.experts), 0);
  for (int64_t i = 0; i < active; ++i) counts[static_cast<size_t>(pool[static_cast<size_t>(i)])] = each;
  return counts;
}

// ---- small cases (also run under compute-sanitizer): every tile configuration ----------------

// 6 of 8 experts have weights. Decode tiles (mean rows per expert <= 16): 5 tokens.
TEST_F(MoeExpertsCuda, SmallDecodeTiles) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, {0, 2, 3, 4, 6, 7}, seed);
  check_step({1, 0, 3, 2, 0, 0, 3, 1}, seed + 1, /*check_all=*/true);
  check_step({0, 0, 0, 0, 0, 0, 0, 10}, seed + 2, /*check_all=*/true);  // one expert, the last
}

// Every decode ring, whose prologues (2 to 10 k-tiles) are longer or shorter than K = 512 and
// 256 (gate_up, down: 8 and 4 k-tiles).
TEST_F(MoeExpertsCuda, SmallDecodeRings) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, {0, 2, 3, 4, 6, 7}, seed);
  check_step({1, 0, 3, 2, 0, 0, 3, 1}, seed + 1, /*check_all=*/true, kAllRings);
  check_step({1, 0, 0, 0, 0, 0, 0, 0}, seed + 2, /*check_all=*/true, kAllRings);  // one row
}

// The chain of the note at the top on the small problem (every expert with weights): 1, 3 and 8
// tokens through the model's dispatch and every decode ring (K 512 and 256: 8 and 4 k-tiles,
// shorter than the deepest rings' prologues).
TEST_F(MoeExpertsCuda, SmallChainedAfterRouting) {
  make_weights(kSmall, {0, 1, 2, 3, 4, 5, 6, 7}, fresh_seed());
  for (int64_t t : {1, 3, 8}) check_chain_every_ring(kSmall, t);
}

// 16 < mean <= 64 (the wgmma kernel, mostly one 128-row tile an expert with the second
// warpgroup idle): 256 rows, one expert over two tiles, the first expert empty.
TEST_F(MoeExpertsCuda, SmallMidTiles) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, {0, 2, 3, 4, 6, 7}, seed);
  check_step({0, 0, 150, 64, 1, 0, 40, 1}, seed + 1, /*check_all=*/true);
}

// Prefill tiles, the wgmma kernel (mean > 64): 1024 rows, an expert of exactly 128 and one of
// 129 rows, tiles of 1 and 10 rows (the second warpgroup's rows all past the expert); then 569
// rows (P not a multiple of the 128-row tile) whose last expert ends at P, so its last tile reads
// past the tensor (TMA zero fill).
TEST_F(MoeExpertsCuda, SmallPrefillTiles) {
  const uint64_t seed = fresh_seed();
  make_weights(kSmall, {0, 2, 3, 4, 6, 7}, seed);
  check_step({128, 0, 129, 500, 1, 0, 266, 0}, seed + 1, /*check_all=*/true);
  check_step({3, 0, 170, 200, 65, 0, 0, 131}, seed + 2, /*check_all=*/true);
}

TEST_F(MoeExpertsCuda, SmallNoRowsIsANoOp) {
  make_weights(kSmall, {0}, fresh_seed());
  const Tensor x = Tensor::empty({0, kSmall.hidden}, DType::kBF16, Device::kCUDA);
  const Tensor off = testing::i32_tensor(std::vector<int32_t>(kSmall.experts + 1, 0), {kSmall.experts + 1});
  Tensor out = Tensor::empty({0, kSmall.hidden}, DType::kBF16, Device::kCUDA);
  Tensor hidden = Tensor::empty({0, kSmall.inter}, DType::kBF16, Device::kCUDA);
  moe_experts(x, off.to(Device::kCUDA), gpu_, ActQuantParams{}, hidden, out, Stream{stream_});
  MLA_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

// ---- DeepSeek shapes -------------------------------------------------------------------------

// V2-Lite: 24 of 64 experts have weights (the rest NaN); T = 1, 64 (decode tiles), 256 (mid),
// 1024 and 4096 (prefill, wgmma).
TEST_F(MoeExpertsCuda, V2Lite) { check_model(kV2Lite, 24, {1, 64, 256, 1024, 4096}); }

// The decode tiles with every ring (and the model's dispatch, which picks them) at 1 to 8 rows
// per expert (decode batches of 1 to 8 tokens: at most one row a token per expert): V2-Lite (64
// experts, H 2048, K 32 and 22 k-tiles) with k = 6 experts of 1, 2 and 8 rows each (one step of
// 1, 2 and 8 tokens that agree on their experts), 8 experts of 1 .. 8 rows, and skewed routings;
// V2 (160 experts, H 5120, Im 1536).
TEST_F(MoeExpertsCuda, V2LiteDecodeRowsPerExpert) {
  const uint64_t seed = fresh_seed();
  std::vector<int64_t> pool(12);
  std::iota(pool.begin(), pool.end(), 50);
  make_weights(kV2Lite, pool, seed);
  for (int32_t each : {1, 2, 8}) {
    check_step(uniform_counts(kV2Lite, pool, kV2Lite.top_k, each), seed + 1 + each, /*check_all=*/true, kAllRings);
  }
  std::vector<int32_t> counts(64, 0);
  for (int64_t i = 0; i < 8; ++i) counts[static_cast<size_t>(pool[i])] = static_cast<int32_t>(i + 1);  // 1 .. 8 rows
  check_step(counts, seed + 20, /*check_all=*/true, kAllRings);
  std::mt19937_64 rng(seed);
  for (int64_t t : {1, 2, 8}) check_step(skewed_counts(kV2Lite, pool, t, rng), seed + 100 + t, /*check_all=*/true);
}

// The chain at V2-Lite's shapes (all 64 experts with weights): the decode step's 1 token (6
// experts: gate_up 264 CTAs, down 192) and 2 and 8 tokens, through the model's dispatch and
// every ring.
TEST_F(MoeExpertsCuda, V2LiteChainedAfterRouting) {
  std::vector<int64_t> all(64);
  std::iota(all.begin(), all.end(), 0);
  make_weights(kV2Lite, all, fresh_seed());
  for (int64_t t : {1, 2, 8}) check_chain_every_ring(kV2Lite, t);
}

TEST_F(MoeExpertsCuda, V2DecodeRowsPerExpert) {
  const uint64_t seed = fresh_seed();
  make_weights(kV2, {3, 77, 80, 120, 158, 159}, seed);
  std::vector<int32_t> counts(160, 0);
  counts[3] = 1, counts[77] = 8, counts[80] = 2, counts[120] = 5, counts[159] = 3;
  check_step(counts, seed + 1, /*check_all=*/true, kAllRings);
  std::mt19937_64 rng(seed);
  for (int64_t t : {1, 8}) check_step(skewed_counts(kV2, {3, 77, 80, 120, 158, 159}, t, rng), seed + 50 + t, true);
}

// V3 (256 experts, H 7168, Im 2048; 22.5 GB of stacked weights, 8 of them random): k = 8 experts
// of 1, 2 and 8 rows each with every ring (the model's 1-token step: gate_up 512 CTAs, down 896;
// the CPU checks every row at 1 and 2 rows, three rows of each expert at 8), then skewed
// routings of 1, 2 and 8 tokens over the model's dispatch.
TEST_F(MoeExpertsCuda, V3DecodeRowsPerExpert) {
  const uint64_t seed = fresh_seed();
  const std::vector<int64_t> pool = {0, 17, 63, 64, 128, 200, 254, 255};
  make_weights(kV3, pool, seed);
  for (int32_t each : {1, 2, 8}) {
    check_step(uniform_counts(kV3, pool, kV3.top_k, each), seed + 1 + each, /*check_all=*/each <= 2, kAllRings);
  }
  std::mt19937_64 rng(seed);
  for (int64_t t : {1, 2, 8}) check_step(skewed_counts(kV3, pool, t, rng), seed + 100 + t, /*check_all=*/false);
}

// V3: 10 of 256 experts have weights (22.5 GB of stacked bf16 weights on the GPU, 0.9 GB of
// them random); T = 1, 64 (decode tiles), 1024 (mid), 4096 (prefill, wgmma).
TEST_F(MoeExpertsCuda, V3) { check_model(kV3, 10, {1, 64, 1024, 4096}); }

}  // namespace
}  // namespace mlaserve::ops
