// mla_decode_cuda (sm_90a) against the CPU reference mla_decode_cpu, on fresh random inputs at
// DeepSeek's shapes: 16 heads (V3 under TP8, V2-Lite) and 128 (V3 on one GPU), plus 8/32/64;
// 1-3 query tokens per sequence; contexts at block boundaries up to 32k; shuffled block tables.
// Cache rows that no sequence may see (past each sequence's end, spare blocks) hold NaN, so a
// kernel that reads them, or lets them reach an output, fails. Outputs are poisoned first.
//
// Tolerances, from the precision of the GPU path: inputs are the same bf16 values on both
// sides; the GPU rounds the softmax weights P to bf16 before P V (relative error <= 2^-9 each,
// random in sign) and rounds out to bf16 (<= 2^-9 relative). Together that is a relative L2
// error of ~2-4e-3; 1e-2 over the whole tensor and 2e-2 for any single (token, head) row leave
// margin, while a wrong mask, a lost block or a misplaced row costs far more at the short
// contexts below. lse is fp32 on both sides (tensor-core fp32 accumulation, exp2/log2): 1e-3.
//
// The split-S kernel (chosen below 8 sequences of at most 16 query rows) merges split sequences itself, behind a counter
// per (split sequence, query tile) that each call must leave at zero: the graph-replay case runs
// a captured pair of calls twice and then reads the counters back.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "../op_test_util.h"
#include "core/cuda_check.h"
#include "ops/cuda/mla_decode_sm90_heuristics.h"
#include "ops/mla_decode.h"

namespace mlaserve::ops {
namespace {

using testing::i32_tensor;
using testing::random_tensor;

struct SeqSpec {
  int32_t seq_len;  // keys, the new tokens included
  int32_t q_len;
};

struct HostProblem {
  MlaDecodeArgs args;  // q, kv_cache bf16; tables i32; all on the host
  int64_t n_heads;
  int64_t max_q_len;
};

constexpr uint16_t kBf16NaN = 0x7FC0;

HostProblem make_problem(const std::vector<SeqSpec>& seqs, int64_t n_heads, uint64_t seed, float q_scale = 1.0f) {
  std::mt19937_64 rng(seed);
  const auto b = static_cast<int64_t>(seqs.size());
  int64_t total_q = 0, used_blocks = 0, max_blocks = 1, max_q_len = 1;
  for (const SeqSpec& s : seqs) {
    total_q += s.q_len;
    const int64_t blocks = (s.seq_len + kKvBlockSize - 1) / kKvBlockSize;
    used_blocks += blocks;
    max_blocks = std::max(max_blocks, blocks + 1);  // one spare column, left at -1
    max_q_len = std::max<int64_t>(max_q_len, s.q_len);
  }
  const int64_t num_blocks = used_blocks + 5;  // spare blocks stay NaN
  std::vector<int32_t> pool(static_cast<size_t>(num_blocks));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);

  HostProblem p;
  p.n_heads = n_heads;
  p.max_q_len = max_q_len;
  p.args.q = random_tensor({total_q, n_heads, kCacheRowDim}, DType::kBF16, rng, q_scale);
  p.args.kv_cache = random_tensor({num_blocks, kKvBlockSize, kCacheRowDim}, DType::kBF16, rng);
  bfloat16* cache = p.args.kv_cache.data<bfloat16>();
  std::vector<bool> visible(static_cast<size_t>(num_blocks * kKvBlockSize), false);

  std::vector<int32_t> table(static_cast<size_t>(b * max_blocks), -1), lens, starts{0};
  size_t next = 0;
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t pos = 0; pos < seqs[i].seq_len; ++pos) {
      if (pos % kKvBlockSize == 0) table[i * max_blocks + pos / kKvBlockSize] = pool[next++];
      visible[table[i * max_blocks + pos / kKvBlockSize] * kKvBlockSize + pos % kKvBlockSize] = true;
    }
    lens.push_back(seqs[i].seq_len);
    starts.push_back(starts.back() + seqs[i].q_len);
  }
  for (size_t row = 0; row < visible.size(); ++row) {
    if (visible[row]) continue;
    for (int64_t c = 0; c < kCacheRowDim; ++c) cache[row * kCacheRowDim + c].bits = kBf16NaN;
  }
  p.args.block_table = i32_tensor(table, {b, max_blocks});
  p.args.seq_lens = i32_tensor(lens, {b});
  p.args.query_start = i32_tensor(starts, {b + 1});
  p.args.softmax_scale = 0.1352338f;  // V3's (dn + dr)^-1/2 · m²
  return p;
}

MlaDecodeArgs to_gpu(const MlaDecodeArgs& a) {
  MlaDecodeArgs g = a;
  g.q = a.q.to(Device::kCUDA);
  g.kv_cache = a.kv_cache.to(Device::kCUDA);
  g.block_table = a.block_table.to(Device::kCUDA);
  g.seq_lens = a.seq_lens.to(Device::kCUDA);
  g.query_start = a.query_start.to(Device::kCUDA);
  return g;
}

MlaDecodeOutputs poisoned_gpu_outputs(int64_t t, int64_t n) {
  MlaDecodeOutputs o{Tensor::empty({t, n, kLatentDim}, DType::kBF16, Device::kCUDA),
                     Tensor::empty({t, n}, DType::kF32, Device::kCUDA)};
  o.out.fill_bytes(0xFF);  // NaN in bf16 and f32
  o.lse.fill_bytes(0xFF);
  return o;
}

struct HostResult {
  std::vector<float> out;  // [T, n, 512]
  std::vector<float> lse;  // [T, n]
};

HostResult to_host(const MlaDecodeOutputs& o) {
  MLA_CUDA_CHECK(cudaDeviceSynchronize());
  return {o.out.to(Device::kCPU).to_vector(), o.lse.to(Device::kCPU).to_vector()};
}

HostResult reference(const HostProblem& p) {
  const int64_t t = p.args.q.dim(0);
  MlaDecodeOutputs o{Tensor::empty({t, p.n_heads, kLatentDim}, DType::kF32),
                     Tensor::empty({t, p.n_heads}, DType::kF32)};
  mla_decode_cpu(p.args, o);
  return {o.out.to_vector(), o.lse.to_vector()};
}

void expect_matches(const HostResult& got, const HostResult& want) {
  ASSERT_EQ(got.out.size(), want.out.size());
  ASSERT_EQ(got.lse.size(), want.lse.size());
  int64_t unwritten = 0;
  for (float v : got.out) unwritten += std::isnan(v) ? 1 : 0;
  for (float v : got.lse) unwritten += std::isnan(v) ? 1 : 0;
  ASSERT_EQ(unwritten, 0) << "outputs left unwritten (poison) or NaN";

  double num = 0.0, den = 0.0, worst_row = 0.0;
  int64_t worst_row_index = -1;
  for (size_t row = 0; row < got.lse.size(); ++row) {
    double rn = 0.0, rd = 0.0;
    for (int64_t c = 0; c < kLatentDim; ++c) {
      const double g = got.out[row * kLatentDim + c], w = want.out[row * kLatentDim + c];
      rn += (g - w) * (g - w);
      rd += w * w;
    }
    num += rn;
    den += rd;
    const double row_err = std::sqrt(rn / std::max(rd, 1e-30));
    if (row_err > worst_row) {
      worst_row = row_err;
      worst_row_index = static_cast<int64_t>(row);
    }
  }
  const double rel_l2 = std::sqrt(num / den);
  EXPECT_LT(rel_l2, 1e-2) << "relative L2 error of out";
  EXPECT_LT(worst_row, 2e-2) << "worst (token, head) row " << worst_row_index;
  double worst_lse = 0.0;
  int64_t worst_lse_index = 0;
  for (size_t i = 0; i < got.lse.size(); ++i) {
    const double e = std::abs(static_cast<double>(got.lse[i]) - want.lse[i]);
    if (e > worst_lse) {
      worst_lse = e;
      worst_lse_index = static_cast<int64_t>(i);
    }
  }
  EXPECT_LT(worst_lse, 1e-3) << "lse at row " << worst_lse_index << ": got " << got.lse[worst_lse_index]
                             << ", want " << want.lse[worst_lse_index];
}

class MlaDecodeCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU visible: mla_decode_cuda needs an sm_90a GPU";
    cudaDeviceProp prop{};
    MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    if (prop.major != 9) GTEST_SKIP() << "mla_decode_cuda is built for sm_90a; this GPU is " << prop.name;
  }

  // Runs the split-S kernel and the partitioned kernel of these rows (the ring kernel at <= 16
  // query rows a sequence, else the seesaw) through a schedule made for this batch with each plan
  // (the update picks the kernels by B, the plan by the lengths; each is forced here in turn) and
  // checks each against the CPU.
  static void check(const std::vector<SeqSpec>& seqs, int64_t n_heads, uint64_t seed, float q_scale = 1.0f) {
    const HostProblem p = make_problem(seqs, n_heads, seed, q_scale);
    const HostResult want = reference(p);
    const MlaDecodeArgs g = to_gpu(p.args);
    MlaDecodeSchedule schedule =
        mla_decode_schedule_create(static_cast<int64_t>(seqs.size()), n_heads, p.max_q_len);
    for (const MlaPlan plan : {MlaPlan::kSplit, MlaPlan::kWhole}) {
      schedule.plan = plan;
      mla_decode_schedule_update(schedule, g.seq_lens, nullptr);
      MLA_CUDA_CHECK(cudaDeviceSynchronize());  // the schedule is complete: early_loads may read it
      for (const std::string_view kernel : {"split-S", "partitioned"}) {
        for (const bool early : {false, true}) {
          // The seesaw's query tile pairs as clusters sharing each block (kv_multicast, where
          // use_kv_multicast allows it: 128 heads) and apart: the same bits.
          std::vector<float> multicast_out;
          for (const bool multicast : {true, false}) {
            SCOPED_TRACE(std::string(kernel) + " kernel" + (plan == MlaPlan::kSplit ? ", split plan" : ", whole plan") +
                         (early ? ", early loads" : "") + (multicast ? "" : ", no multicast"));
            schedule.partitioned = kernel != "split-S";
            schedule.kv_multicast = multicast;
            MlaDecodeArgs a = g;
            a.early_loads = early;
            MlaDecodeOutputs o = poisoned_gpu_outputs(p.args.q.dim(0), n_heads);
            mla_decode_cuda(a, o, schedule, nullptr);
            const HostResult got = to_host(o);
            expect_matches(got, want);
            if (multicast) {
              multicast_out = got.out;
            } else {
              EXPECT_EQ(got.out, multicast_out) << "multicast and plain copies differ";
            }
            if (n_heads % 128 != 0 || kernel == "split-S") break;  // no clusters to compare with
          }
        }
      }
    }
  }

  // Sequences the update split (pieces > 1), read back from the schedule.
  static int64_t split_count(const MlaDecodeSchedule& schedule) {
    MLA_CUDA_CHECK(cudaDeviceSynchronize());
    const Tensor splits = schedule.seq_splits.to(Device::kCPU);  // [max_seqs, 2]
    int64_t n = 0;
    for (int64_t b = 0; b < schedule.num_seqs; ++b) n += splits.data<int32_t>()[2 * b] > 1 ? 1 : 0;
    return n;
  }
};

std::vector<SeqSpec> uniform_batch(int64_t b, int32_t min_len, int32_t max_len, int32_t q_len, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> len(min_len, max_len);
  std::vector<SeqSpec> seqs;
  for (int64_t i = 0; i < b; ++i) seqs.push_back({std::max(len(rng), q_len), q_len});
  return seqs;
}

// ---- small cases (also run under compute-sanitizer) ------------------------------------------

TEST_F(MlaDecodeCuda, SmallOneSequenceAtBlockBoundaries16Heads) {
  for (int32_t ctx : {1, 63, 64, 65, 1000, 4096}) {
    SCOPED_TRACE("context " + std::to_string(ctx));
    check({{ctx, 1}}, 16, 100 + ctx);
  }
}

TEST_F(MlaDecodeCuda, SmallCausalPromptTwoHeads) {
  // A 300-token prompt attending to itself in one call (the absorbed form's unchunked prefill of
  // the tiny V3 golden model: 2 heads, 600 query rows, bottom-right causal), at the test's usual
  // score spread and at 8x and 1/8x of it (q scaled).
  for (const float q_scale : {1.0f, 8.0f, 0.125f}) {
    SCOPED_TRACE("q scale " + std::to_string(q_scale));
    check({{300, 300}}, 2, 150, q_scale);
  }
}

TEST_F(MlaDecodeCuda, SmallFewPiecesMergeARowAWarp) {
  // Split in 2-8 pieces with more query rows than pieces: each CTA merges several rows, one a
  // warp (merge_row_warp), at 16 and 128 heads and with 2-token queries (32 / 256 rows).
  for (const int64_t heads : {16, 128}) {
    for (int32_t ctx : {65, 129, 300, 500}) {
      for (int32_t q_len : {1, 2}) {
        SCOPED_TRACE(std::to_string(heads) + " heads, context " + std::to_string(ctx) + ", " +
                     std::to_string(q_len) + "-token query");
        check({{ctx, q_len}}, heads, 150 + ctx + heads + q_len);
      }
    }
  }
}

TEST_F(MlaDecodeCuda, SmallMixedBatchMultiTokenQueries16Heads) {
  check({{3, 3}, {63, 2}, {64, 1}, {65, 3}, {127, 2}, {128, 1}, {1000, 3}, {129, 2}}, 16, 200);
}

TEST_F(MlaDecodeCuda, SmallMixedBatch128Heads) {
  check({{1, 1}, {65, 1}, {64, 2}, {3, 3}, {200, 3}}, 128, 300);
}

TEST_F(MlaDecodeCuda, SmallOtherHeadCounts) {
  check({{70, 3}, {5, 1}, {300, 2}}, 8, 400);    // 24 rows: one padded tile
  check({{70, 1}, {129, 2}}, 32, 401);           // 32 / 64 rows
  check({{64, 2}, {1000, 1}, {2, 2}}, 64, 402);  // 128 rows: two tiles
}

TEST_F(MlaDecodeCuda, SmallRingKernelMultiTokenAndFewRows) {
  // The ring kernel's problems other than 16 heads x 1 token: 16 rows of 8 heads x 2 tokens and
  // 4 heads x 4 tokens (causal within the query), and 8 rows (the Q tile's rows 8-15 stay zero).
  check({{70, 2}, {5, 1}, {300, 2}, {2, 2}, {129, 1}}, 8, 410);
  check({{65, 4}, {200, 1}, {4, 4}, {129, 3}}, 4, 411);
  check({{1000, 1}, {63, 1}, {64, 1}}, 8, 412);
}

TEST_F(MlaDecodeCuda, SmallScheduleReusedAcrossLayers) {
  // One schedule per step serves every layer: two "layers" with their own q and cache.
  const std::vector<SeqSpec> seqs = {{700, 1}, {65, 2}, {1, 1}, {2000, 1}};
  const HostProblem first = make_problem(seqs, 16, 500), second = make_problem(seqs, 16, 501);
  const MlaDecodeArgs g1 = to_gpu(first.args), g2 = to_gpu(second.args);
  MlaDecodeSchedule schedule = mla_decode_schedule_create(8, 16, 2);  // capacity beyond the batch
  mla_decode_schedule_update(schedule, g1.seq_lens, nullptr);
  MlaDecodeOutputs o1 = poisoned_gpu_outputs(first.args.q.dim(0), 16);
  MlaDecodeOutputs o2 = poisoned_gpu_outputs(second.args.q.dim(0), 16);
  mla_decode_cuda(g1, o1, schedule, nullptr);
  mla_decode_cuda(g2, o2, schedule, nullptr);
  expect_matches(to_host(o1), reference(first));
  expect_matches(to_host(o2), reference(second));
}

TEST_F(MlaDecodeCuda, SmallRepeatedRunsAreBitwiseEqual) {
  // A fixed schedule and a fixed order of arithmetic (the split-S kernel's counters only order
  // its merge): the same inputs give the same bits (a moving result is a race).
  const HostProblem p = make_problem(uniform_batch(6, 2, 1500, 2, 600), 128, 601);
  const MlaDecodeArgs g = to_gpu(p.args);
  const int64_t t = p.args.q.dim(0);
  MlaDecodeOutputs a = poisoned_gpu_outputs(t, 128), b = poisoned_gpu_outputs(t, 128);
  mla_decode_cuda(g, a, nullptr);  // the convenience overload: makes its own schedule
  mla_decode_cuda(g, b, nullptr);
  const HostResult ha = to_host(a), hb = to_host(b);
  EXPECT_EQ(std::memcmp(ha.out.data(), hb.out.data(), ha.out.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(ha.lse.data(), hb.lse.data(), ha.lse.size() * sizeof(float)), 0);
  expect_matches(ha, reference(p));
}

TEST_F(MlaDecodeCuda, SmallRejectsMismatchedSchedule) {
  const HostProblem p = make_problem({{100, 1}, {10, 1}}, 16, 700);
  const MlaDecodeArgs g = to_gpu(p.args);
  MlaDecodeOutputs o = poisoned_gpu_outputs(2, 16);
  MlaDecodeSchedule wrong_heads = mla_decode_schedule_create(2, 128, 1);
  mla_decode_schedule_update(wrong_heads, g.seq_lens, nullptr);
  EXPECT_THROW(mla_decode_cuda(g, o, wrong_heads, nullptr), Error);
  MlaDecodeSchedule too_small = mla_decode_schedule_create(1, 16, 1);
  EXPECT_THROW(mla_decode_schedule_update(too_small, g.seq_lens, nullptr), Error);
  MlaDecodeArgs host_q = g;
  host_q.q = p.args.q;  // on the host
  MlaDecodeSchedule ok = mla_decode_schedule_create(2, 16, 1);
  mla_decode_schedule_update(ok, g.seq_lens, nullptr);
  EXPECT_THROW(mla_decode_cuda(host_q, o, ok, nullptr), Error);
}

TEST_F(MlaDecodeCuda, SmallGraphReplaysLeaveMergeCountersAtZero) {
  // Two "layers" captured in one CUDA graph with a schedule updated once outside it (as the
  // engine's step graph reuses one plan per layer), replayed twice with fresh poison before each
  // replay: the second call of each replay and the second replay see the counters the calls
  // before left. The split-S kernel: batch 1 at 4096 tokens (64 pieces, quarter-row merge items)
  // and a 128-head batch with 2-token queries (4 query tiles, whole-row items); the seesaw, which
  // merges in-kernel from kSeesawMergeMinSeqs sequences: 16 of 128 heads, split.
  struct Case {
    std::vector<SeqSpec> seqs;
    int64_t n_heads;
    bool seesaw;
  };
  const std::vector<Case> cases = {Case{{{4096, 1}}, 16, false}, Case{{{3000, 2}, {70, 1}, {1500, 2}}, 128, false},
                                   Case{uniform_batch(16, 200, 300, 1, 850), 128, true}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.n_heads) + " heads, " + std::to_string(c.seqs.size()) + " sequences");
    const HostProblem first = make_problem(c.seqs, c.n_heads, 1000), second = make_problem(c.seqs, c.n_heads, 1001);
    const HostResult want1 = reference(first), want2 = reference(second);
    const MlaDecodeArgs g1 = to_gpu(first.args), g2 = to_gpu(second.args);
    cudaStream_t stream;
    MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    MlaDecodeSchedule schedule =
        mla_decode_schedule_create(static_cast<int64_t>(c.seqs.size()), c.n_heads, first.max_q_len);
    if (c.seesaw) schedule.plan = MlaPlan::kSplit;
    mla_decode_schedule_update(schedule, g1.seq_lens, stream);
    schedule.partitioned = c.seesaw;  // the kernel whose merge counters are under test
    if (c.seesaw) {
      ASSERT_GE(static_cast<int64_t>(c.seqs.size()), sm90::kSeesawMergeMinSeqs);
      ASSERT_GT(split_count(schedule), 0);
    }
    MlaDecodeOutputs o1 = poisoned_gpu_outputs(first.args.q.dim(0), c.n_heads);
    MlaDecodeOutputs o2 = poisoned_gpu_outputs(second.args.q.dim(0), c.n_heads);
    MLA_CUDA_CHECK(cudaDeviceSynchronize());  // the poison went to the legacy stream

    cudaGraph_t graph;
    cudaGraphExec_t exec;
    MLA_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    mla_decode_cuda(g1, o1, schedule, stream);
    mla_decode_cuda(g2, o2, schedule, stream);
    MLA_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    MLA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    for (int replay = 0; replay < 2; ++replay) {
      SCOPED_TRACE("replay " + std::to_string(replay));
      for (MlaDecodeOutputs* o : {&o1, &o2}) {
        o->out.fill_bytes(0xFF, Stream{stream});
        o->lse.fill_bytes(0xFF, Stream{stream});
      }
      MLA_CUDA_CHECK(cudaGraphLaunch(exec, stream));
      MLA_CUDA_CHECK(cudaStreamSynchronize(stream));
      expect_matches(to_host(o1), want1);
      expect_matches(to_host(o2), want2);
    }
    MLA_CUDA_CHECK(cudaGraphExecDestroy(exec));
    MLA_CUDA_CHECK(cudaGraphDestroy(graph));
    MLA_CUDA_CHECK(cudaStreamDestroy(stream));
    const Tensor counters = schedule.merge_counters.to(Device::kCPU);
    const int32_t* cv = counters.data<int32_t>();
    EXPECT_TRUE(std::all_of(cv, cv + counters.numel(), [](int32_t v) { return v == 0; }))
        << "a merge counter was left non-zero";
  }
}

// ---- batch and context at serving sizes -----------------------------------------------------

TEST_F(MlaDecodeCuda, BatchesOneToSevenSplitS) {
  // Every batch size the split-S kernel is chosen for, mixed 1- and 2-token queries and contexts
  // from 1 to 6000 tokens at 16 heads (sequences split 1 to ~90 ways, merged by quarter rows or
  // whole rows), 1 to 3000 at 128 heads (2-4 query tiles, whole rows; the CPU reference's time).
  for (int64_t b = 1; b <= 7; ++b) {
    for (const int64_t heads : {16, 128}) {
      SCOPED_TRACE(std::to_string(b) + " sequences, " + std::to_string(heads) + " heads");
      std::vector<SeqSpec> seqs = uniform_batch(b, 1, heads == 16 ? 6000 : 3000, 1, 1100 + 10 * b + heads);
      for (size_t i = 1; i < seqs.size(); i += 2) seqs[i].q_len = std::min(2, seqs[i].seq_len);
      check(seqs, heads, 1200 + 10 * b + heads);
    }
  }
}

TEST_F(MlaDecodeCuda, SmallAutoPlanDealsWholeSequencesWhenTheyShareEvenly) {
  // The rule of mla_decode_sm90_heuristics.h on the device: 128 equal sequences over ~132
  // partitions cost one sequence each whole, about as much as an equal share split: no split. One
  // long sequence (batch 1) or 64 sequences over 132 partitions must split. Lengths only: the
  // schedule never reads the cache.
  struct Case {
    int64_t batch, n_heads;
    int32_t seq_len;
    bool whole;
  };
  // Short partitions (the card mostly idle): a sequence of 2 blocks stays whole, 4 or more split,
  // at 16 and 128 heads alike; 8 x 1024 tokens at 128 heads split (the flat penalty of 20 blocks
  // kept them whole, at twice the time).
  for (const Case& c : {Case{128, 16, 4096, true}, Case{128, 128, 4096, true}, Case{1, 16, 4096, false},
                        Case{64, 16, 8192, false}, Case{32, 16, 32768, false}, Case{1, 16, 128, true},
                        Case{1, 128, 128, true}, Case{1, 16, 256, false}, Case{1, 128, 1024, false},
                        Case{8, 128, 1024, false}, Case{16, 128, 128, true}}) {
    SCOPED_TRACE(std::to_string(c.batch) + " x " + std::to_string(c.seq_len) + ", " + std::to_string(c.n_heads) +
                 " heads");
    const Tensor lens = i32_tensor(std::vector<int32_t>(static_cast<size_t>(c.batch), c.seq_len), {c.batch});
    MlaDecodeSchedule schedule = mla_decode_schedule_create(c.batch, c.n_heads, 1);
    mla_decode_schedule_update(schedule, lens.to(Device::kCUDA), nullptr);
    if (c.whole) {
      EXPECT_EQ(split_count(schedule), 0);
    } else {
      EXPECT_GT(split_count(schedule), 0);
    }
  }
}

TEST_F(MlaDecodeCuda, Batch128Mixed16Heads) { check(uniform_batch(128, 1, 1200, 1, 800), 16, 801); }

TEST_F(MlaDecodeCuda, Batch32TwoTokenQueries16Heads) { check(uniform_batch(32, 2, 1200, 2, 810), 16, 811); }

TEST_F(MlaDecodeCuda, Batch300MoreSequencesThanOneScanChunk) { check(uniform_batch(300, 1, 200, 1, 820), 16, 821); }

TEST_F(MlaDecodeCuda, Batch16ThreeTokenQueries128Heads) { check(uniform_batch(16, 3, 700, 3, 830), 128, 831); }

// V3's decode on one GPU: 128 heads of one token, two query tiles a sequence, from 8 sequences the
// seesaw kernel (the three-token case above has six tiles).
TEST_F(MlaDecodeCuda, Batch24OneToken128Heads) { check(uniform_batch(24, 1, 2000, 1, 840), 128, 841); }

// Many short sequences at 128 heads: a seesaw partition holds several pieces with odd and even block counts, so pieces end on pairs without
// B and the Q tile is copied again inside a CTA's walk.
TEST_F(MlaDecodeCuda, Batch96ShortSequences128Heads) { check(uniform_batch(96, 1, 400, 1, 920), 128, 921); }

TEST_F(MlaDecodeCuda, Long32kContexts16Heads) { check({{32768, 1}, {20000, 2}, {4096, 1}}, 16, 900); }

// One-token queries: the ring kernel (the 2-token query above takes the 32-row seesaw),
// its 25 slots reused hundreds of times by one CTA.
TEST_F(MlaDecodeCuda, Long32kContexts16HeadsOneToken) { check({{32768, 1}, {20000, 1}, {4096, 1}}, 16, 903); }

TEST_F(MlaDecodeCuda, Long16kContext128Heads) { check({{16384, 1}}, 128, 901); }

TEST_F(MlaDecodeCuda, Batch4Context4096With128Heads) { check(uniform_batch(4, 4096, 4096, 1, 910), 128, 911); }

}  // namespace
}  // namespace mlaserve::ops
