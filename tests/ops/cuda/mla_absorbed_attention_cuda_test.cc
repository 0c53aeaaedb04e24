// mla_absorbed_attention_cuda (the fused absorption + MLA decode + up-projection kernel, sm_90a)
// against (1) the CPU reference, which is the three CPU ops in a row, and (2) the three GPU ops in
// a row (mla_absorb_query, mla_decode, mla_up_project_output), on fresh random inputs at the
// kernel's shapes: 16 heads (one cluster a sequence) and 32, 64, 128 (two, four, eight clusters;
// 128 heads are refused where the GPU holds fewer than 8 clusters of 16, as an H200), one query
// token a sequence, 1-8 sequences; contexts of 1-6000 tokens (lengths not multiples of 64,
// shorter than the cluster's 16 blocks, shuffled block tables). Cache rows that no sequence may
// see hold NaN; outputs are poisoned first.
//
// Tolerances, from the precision of the GPU paths. Against the CPU (f32 q_abs and o_lat): the GPU
// rounds q_abs to bf16 (score error ~0.4% of a score's spread here), P to bf16, o_lat to bf16 and
// o to bf16 (<= 2^-9 relative each): a relative L2 error of a few 1e-3; 2e-2 over the tensor and
// 4e-2 for any (token, head) row of 128 leave margin while a lost block, a wrong head or a
// misplaced row costs far more. Against the three GPU ops: the absorption and the up-projection
// sum in the same order as mla_absorb_gemv.cuh's kernels (same bits for the same inputs), but the
// attention splits the blocks over 16 CTAs where mla_decode's schedule splits them otherwise, so
// o_lat differs by fp32 summation order and the rounding of P (mla_decode_cuda_test's 1e-2 / 2e-2
// bounds), and o after it: 1e-2 / 2e-2 here too. Bit for bit where the attention is exact: at one
// key a sequence o_lat is that key's latent row in both paths (P = 1, l = 1), so o must match the
// three GPU ops' to the bit, which checks the up-projection's arithmetic. The absorption's bits
// are not observable on their own (no q_abs output); its order is that of the GEMV by
// construction (mla_absorbed_sm90.cuh, step 2).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/mla_absorb.h"
#include "ops/cuda/mla_absorbed_sm90.h"
#include "ops/mla_absorbed_attention.h"
#include "ops/mla_decode.h"
#include "ops/rope.h"

namespace mlaserve::ops {
namespace {

using testing::bf16_bits;
using testing::count_nan;
using testing::i32_tensor;
using testing::mismatches;
using testing::poisoned_gpu;
using testing::random_tensor;
using testing::values;
using testing::worst_row_rel_l2;

constexpr int64_t kHeads = 16, kNope = 128, kRope = 64, kValue = 128;  // kHeads: the default
constexpr uint16_t kBf16NaN = 0x7FC0;

// One problem on the host: q [B, n, 192] and w_kv_b [n · 256, 512] bf16, the cache bf16 with NaN
// in every row no sequence may see, shuffled tables.
MlaAbsorbedArgs make_problem(const std::vector<int32_t>& seq_lens, uint64_t seed, int64_t heads = kHeads) {
  std::mt19937_64 rng(seed);
  const auto b = static_cast<int64_t>(seq_lens.size());
  int64_t used = 0, max_blocks = 1;
  for (int32_t len : seq_lens) {
    const int64_t blocks = (len + kKvBlockSize - 1) / kKvBlockSize;
    used += blocks;
    max_blocks = std::max(max_blocks, blocks + 1);  // one spare column, left at -1
  }
  const int64_t num_blocks = used + 3;  // spare blocks stay NaN
  std::vector<int32_t> pool(static_cast<size_t>(num_blocks));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);

  MlaAbsorbedArgs a;
  a.q = random_tensor({b, heads, kNope + kRope}, DType::kBF16, rng);
  a.w_kv_b = random_tensor({heads * (kNope + kValue), kLatentDim}, DType::kBF16, rng, 0.05f);
  a.kv_cache = random_tensor({num_blocks, kKvBlockSize, kCacheRowDim}, DType::kBF16, rng);
  std::vector<bool> visible(static_cast<size_t>(num_blocks * kKvBlockSize), false);
  std::vector<int32_t> table(static_cast<size_t>(b * max_blocks), -1), starts{0};
  size_t next = 0;
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t pos = 0; pos < seq_lens[i]; ++pos) {
      if (pos % kKvBlockSize == 0) table[i * max_blocks + pos / kKvBlockSize] = pool[next++];
      visible[table[i * max_blocks + pos / kKvBlockSize] * kKvBlockSize + pos % kKvBlockSize] = true;
    }
    starts.push_back(starts.back() + 1);
  }
  bfloat16* cache = a.kv_cache.data<bfloat16>();
  for (size_t row = 0; row < visible.size(); ++row) {
    if (visible[row]) continue;
    for (int64_t c = 0; c < kCacheRowDim; ++c) cache[row * kCacheRowDim + c].bits = kBf16NaN;
  }
  a.block_table = i32_tensor(table, {b, max_blocks});
  a.seq_lens = i32_tensor(seq_lens, {b});
  a.query_start = i32_tensor(starts, {b + 1});
  a.softmax_scale = 0.1352338f;  // V3's (dn + dr)^-1/2 · m²
  return a;
}

MlaAbsorbedArgs to_gpu(const MlaAbsorbedArgs& a) {
  MlaAbsorbedArgs g = a;
  for (Tensor* t : {&g.q, &g.w_kv_b, &g.kv_cache, &g.block_table, &g.seq_lens, &g.query_start}) {
    *t = t->to(Device::kCUDA);
  }
  return g;
}

std::vector<float> cpu_reference(const MlaAbsorbedArgs& host) {
  MlaAbsorbedArgs a = host;
  a.q = host.q.to_f32();
  Tensor o = Tensor::empty({host.q.dim(0), host.q.dim(1), kValue}, DType::kF32);
  mla_absorbed_attention_cpu(a, o);
  return values(o);
}

class MlaAbsorbedCuda : public testing::CudaOpTest {
 protected:
  // The three GPU ops in a row on the test's stream: o [B, n, 128] bf16.
  Tensor three_ops(const MlaAbsorbedArgs& g) {
    const int64_t b = g.q.dim(0), n = g.q.dim(1);
    Tensor q_abs = poisoned_gpu({b, n, kCacheRowDim}, DType::kBF16);
    MLA_CUDA_CHECK(cudaDeviceSynchronize());  // the poison went to the legacy stream
    mla_absorb_query(g.q, g.w_kv_b, q_abs, stream());
    const MlaDecodeArgs d{q_abs, g.kv_cache, g.block_table, g.seq_lens, g.query_start, g.softmax_scale};
    MlaDecodeOutputs lat{poisoned_gpu({b, n, kLatentDim}, DType::kBF16), poisoned_gpu({b, n}, DType::kF32)};
    MLA_CUDA_CHECK(cudaDeviceSynchronize());
    mla_decode_cuda(d, lat, cuda_stream());  // one-off schedule; waits for the stream
    Tensor o = poisoned_gpu({b, n, kValue}, DType::kBF16);
    MLA_CUDA_CHECK(cudaDeviceSynchronize());
    mla_up_project_output(lat.out, g.w_kv_b, o, stream());
    return to_host(o);
  }

  // Whether this GPU holds a cluster of 16 CTAs for each head group of each of the batch's
  // sequences (an H200 holds 7): beyond that the op must refuse the batch (the model then runs the
  // three ops).
  static bool gpu_holds(const MlaAbsorbedArgs& g) {
    return g.q.dim(0) * (g.q.dim(1) / 16) <= sm90::absorbed_max_active_clusters();
  }

  Tensor fused(const MlaAbsorbedArgs& g) {
    Tensor o = poisoned_gpu({g.q.dim(0), g.q.dim(1), kValue}, DType::kBF16);
    MLA_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_TRUE(mla_absorbed_attention_fits(g, o));
    mla_absorbed_attention(g, o, stream());
    return to_host(o);
  }

  // A batch this GPU cannot hold: the op refuses it. True when the caller should stop there.
  bool refused(const MlaAbsorbedArgs& g) {
    if (gpu_holds(g)) return false;
    Tensor o = Tensor::empty({g.q.dim(0), g.q.dim(1), kValue}, DType::kBF16, Device::kCUDA);
    EXPECT_FALSE(mla_absorbed_attention_fits(g, o)) << g.q.dim(0) << " sequences of " << g.q.dim(1)
                                                    << " heads, the GPU holds "
                                                    << sm90::absorbed_max_active_clusters() << " clusters";
    EXPECT_LT(mla_absorbed_attention_max_seqs(g.q.dim(1), Device::kCUDA), g.q.dim(0));
    return true;
  }

  // The fused op (with and without early loads) against the CPU and the three GPU ops.
  void check(const std::vector<int32_t>& seq_lens, uint64_t seed, int64_t heads = kHeads) {
    const MlaAbsorbedArgs host = make_problem(seq_lens, seed, heads);
    MlaAbsorbedArgs g = to_gpu(host);
    if (refused(g)) return;
    EXPECT_GE(mla_absorbed_attention_max_seqs(heads, Device::kCUDA), g.q.dim(0));
    const std::vector<float> want = cpu_reference(host);
    const std::vector<float> three = values(three_ops(g));
    ASSERT_EQ(count_nan(three), 0) << "the three GPU ops left NaN";
    for (const bool early : {false, true}) {
      SCOPED_TRACE(early ? "early loads" : "loads after the wait");
      g.early_loads = early;
      const std::vector<float> got = values(fused(g));
      ASSERT_EQ(count_nan(got), 0) << "outputs left unwritten (poison) or NaN";
      const std::vector<double> got_d(got.begin(), got.end());
      EXPECT_LT(testing::rel_l2_error(got_d, std::vector<double>(want.begin(), want.end())), 2e-2) << "vs the CPU";
      EXPECT_LT(worst_row_rel_l2(got, want, kValue), 4e-2) << "worst (token, head) row vs the CPU";
      EXPECT_LT(testing::rel_l2_error(got_d, std::vector<double>(three.begin(), three.end())), 1e-2)
          << "vs the three GPU ops";
      EXPECT_LT(worst_row_rel_l2(got, three, kValue), 2e-2) << "worst (token, head) row vs the three GPU ops";
    }
  }
};

std::string lens_str(const std::vector<int32_t>& lens) {
  std::string s;
  for (int32_t l : lens) s += std::to_string(l) + " ";
  return s;
}

TEST_F(MlaAbsorbedCuda, BatchOneContexts) {
  // 1 key; under one block; one block and a bit; fewer blocks than the cluster's 16 CTAs; exactly
  // 16 blocks; 16 blocks and one key; long ones, not multiples of 64.
  for (int32_t len : {1, 37, 65, 500, 1024, 1025, 2047, 4097, 6000}) {
    SCOPED_TRACE("context " + std::to_string(len));
    check({len}, 100 + static_cast<uint64_t>(len));
  }
}

TEST_F(MlaAbsorbedCuda, MixedBatches) {
  const std::vector<std::vector<int32_t>> batches = {
      {100, 3},
      {1, 1000, 64},
      {4096, 17, 900, 1},
      {300, 6000, 129, 2, 777},
      {1, 2, 3, 4, 5, 6},
      {5000, 1023, 63, 4000, 12, 2500, 640},
      {6000, 5999, 1, 4097, 333, 1500, 64, 65},
  };
  uint64_t seed = 7;
  for (const auto& lens : batches) {
    SCOPED_TRACE("seq_lens " + lens_str(lens));
    check(lens, seed++);
  }
}

TEST_F(MlaAbsorbedCuda, OneKeyMatchesTheThreeOpsBitForBit) {
  // One key a sequence: o_lat is that key's latent row on both paths, so the up-projection's bits
  // must agree (see the note at the top).
  for (int b = 1; b <= 8; ++b) {
    SCOPED_TRACE(std::to_string(b) + " sequences");
    const MlaAbsorbedArgs g = to_gpu(make_problem(std::vector<int32_t>(static_cast<size_t>(b), 1), 40 + b));
    if (refused(g)) continue;
    const Tensor three = three_ops(g), got = fused(g);
    EXPECT_EQ(mismatches(bf16_bits(got), bf16_bits(three)), 0);
  }
}

TEST_F(MlaAbsorbedCuda, FitsOnlyItsShape) {
  const MlaAbsorbedArgs g = to_gpu(make_problem({100, 200}, 3));
  EXPECT_TRUE(mla_absorbed_attention_fits(g, poisoned_gpu({2, kHeads, kValue}, DType::kBF16)));
  MlaAbsorbedArgs two_tokens = g;  // 4 query rows for 2 sequences
  two_tokens.q = poisoned_gpu({4, kHeads, kNope + kRope}, DType::kBF16);
  EXPECT_FALSE(mla_absorbed_attention_fits(two_tokens, poisoned_gpu({4, kHeads, kValue}, DType::kBF16)));
  const MlaAbsorbedArgs nine = to_gpu(make_problem(std::vector<int32_t>(9, 70), 4));
  EXPECT_FALSE(mla_absorbed_attention_fits(nine, poisoned_gpu({9, kHeads, kValue}, DType::kBF16)));
  EXPECT_FALSE(mla_absorbed_attention_fits(make_problem({100}, 5), Tensor::empty({1, kHeads, kValue}, DType::kF32)))
      << "host tensors: the model keeps the three ops";
  for (const int64_t heads : {8, 24, 144}) {  // not 16 G heads with G = 1 .. 8
    const MlaAbsorbedArgs odd = to_gpu(make_problem({100}, 6, heads));
    EXPECT_FALSE(mla_absorbed_attention_fits(odd, poisoned_gpu({1, heads, kValue}, DType::kBF16))) << heads;
    EXPECT_EQ(mla_absorbed_attention_max_seqs(heads, Device::kCUDA), 0) << heads;
  }
  const int64_t clusters = sm90::absorbed_max_active_clusters();
  EXPECT_EQ(mla_absorbed_attention_max_seqs(16, Device::kCUDA), std::min<int64_t>(8, clusters));
  EXPECT_EQ(mla_absorbed_attention_max_seqs(64, Device::kCUDA), clusters / 4);
  EXPECT_EQ(mla_absorbed_attention_max_seqs(16, Device::kCPU), 0) << "the host keeps the three ops";
}

// Head groups: 32, 64 and 128 heads (two, four, eight clusters a sequence; with head halves where
// the GPU holds twice as many) against the CPU and the three GPU ops, at the batches the GPU holds
// clusters for; the others must be refused.
TEST_F(MlaAbsorbedCuda, HeadGroups) {
  const std::vector<std::vector<int32_t>> batches = {{1}, {500}, {1025}, {4097}, {37, 900}, {6000, 1, 300}};
  uint64_t seed = 60;
  for (const int64_t heads : {32, 64, 128}) {
    for (const auto& lens : batches) {
      SCOPED_TRACE(std::to_string(heads) + " heads, seq_lens " + lens_str(lens));
      check(lens, seed++, heads);
    }
  }
}

TEST_F(MlaAbsorbedCuda, HeadGroupsOneKeyMatchTheThreeOpsBitForBit) {
  for (const int64_t heads : {32, 64}) {
    for (int b = 1; b <= 3; ++b) {
      SCOPED_TRACE(std::to_string(heads) + " heads, " + std::to_string(b) + " sequences");
      const MlaAbsorbedArgs g =
          to_gpu(make_problem(std::vector<int32_t>(static_cast<size_t>(b), 1), 70 + b, heads));
      if (refused(g)) continue;
      EXPECT_EQ(mismatches(bf16_bits(fused(g)), bf16_bits(three_ops(g))), 0);
    }
  }
}

TEST_F(MlaAbsorbedCuda, SmallGraphCaptureAndTwoReplays) {
  // Two "layers" captured in one graph (early loads on, as the model), replayed twice with fresh
  // poison before each: the same bits as the eager calls each time.
  const MlaAbsorbedArgs host1 = make_problem({700, 5}, 11), host2 = make_problem({70, 3000}, 12);
  MlaAbsorbedArgs g1 = to_gpu(host1), g2 = to_gpu(host2);
  g1.early_loads = g2.early_loads = true;
  const std::vector<uint16_t> eager1 = bf16_bits(fused(g1)), eager2 = bf16_bits(fused(g2));
  Tensor o1 = poisoned_gpu({2, kHeads, kValue}, DType::kBF16), o2 = poisoned_gpu({2, kHeads, kValue}, DType::kBF16);
  MLA_CUDA_CHECK(cudaDeviceSynchronize());
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  MLA_CUDA_CHECK(cudaStreamBeginCapture(cuda_stream(), cudaStreamCaptureModeThreadLocal));
  mla_absorbed_attention(g1, o1, stream());
  mla_absorbed_attention(g2, o2, stream());
  MLA_CUDA_CHECK(cudaStreamEndCapture(cuda_stream(), &graph));
  MLA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  for (int replay = 0; replay < 2; ++replay) {
    SCOPED_TRACE("replay " + std::to_string(replay));
    o1.fill_bytes(0xFF, stream());
    o2.fill_bytes(0xFF, stream());
    MLA_CUDA_CHECK(cudaGraphLaunch(exec, cuda_stream()));
    EXPECT_EQ(mismatches(bf16_bits(to_host(o1)), eager1), 0);
    EXPECT_EQ(mismatches(bf16_bits(to_host(o2)), eager2), 0);
  }
  MLA_CUDA_CHECK(cudaGraphExecDestroy(exec));
  MLA_CUDA_CHECK(cudaGraphDestroy(graph));
}

// Two clusters a sequence by head halves (where the GPU holds them: B <= 3 on an H200) against one
// cluster a sequence: the same bits, at lengths that leave CTAs without blocks, give them one or two
// blocks, and a mixed batch. (Several blocks a CTA: BatchOneContexts and SmallBlocksPerCta check the
// halves against the CPU; kept out of here, the slowest case under racecheck.)
TEST_F(MlaAbsorbedCuda, SmallHalvesSameBitsAsOneCluster) {
  if (sm90::absorbed_max_active_clusters() < 2) GTEST_SKIP() << "this GPU holds no two clusters of 16 CTAs";
  for (const auto& lens : std::vector<std::vector<int32_t>>{{1}, {1025}, {1, 130, 1100}}) {
    SCOPED_TRACE("lens " + lens_str(lens));
    MlaAbsorbedArgs g = to_gpu(make_problem(lens, 31));
    if (2 * g.q.dim(0) > sm90::absorbed_max_active_clusters()) continue;
    for (const bool early : {false, true}) {
      g.early_loads = early;
      g.split_heads = false;
      const Tensor one = fused(g);
      g.split_heads = true;
      const Tensor two = fused(g);
      EXPECT_EQ(testing::mismatches(bf16_bits(two), bf16_bits(one)), 0) << (early ? "early loads" : "late loads");
    }
  }
}

// The query's RoPE inside the op (MlaAbsorbedArgs::positions): the same bits as apply_rope_interleaved
// on q then the op, q left as it was; positions in and outside V3's YaRN table, i32 and i64, one
// cluster and halves, at batches 1 and 3 (the model's cases: a decode step the op takes whole).
TEST_F(MlaAbsorbedCuda, SmallRopeInsideSameBitsAsTheRopeKernel) {
  RopeParams rope = testing::deepseek_yarn();
  Tensor table = Tensor::empty({4096, kRope}, DType::kF32);
  build_rope_cos_sin_cpu(rope, table);
  const Tensor cos_sin = table.to(Device::kCUDA);
  for (const auto& [lens, positions] : std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>>{
           {{200}, {4095}}, {{1, 130, 1100}, {0, 129, 9000}}}) {
    SCOPED_TRACE("lens " + lens_str(lens));
    MlaAbsorbedArgs g = to_gpu(make_problem(lens, 41));
    if (refused(g)) continue;
    for (const DType index : {DType::kI32, DType::kI64}) {
      Tensor pos = i32_tensor(positions, {static_cast<int64_t>(positions.size())});
      if (index == DType::kI64) {
        pos = Tensor::empty(pos.shape(), DType::kI64);
        for (size_t i = 0; i < positions.size(); ++i) pos.data<int64_t>()[i] = positions[i];
      }
      const Tensor pos_gpu = pos.to(Device::kCUDA);
      for (const bool halves : {false, true}) {
        g.split_heads = halves;
        MlaAbsorbedArgs rotated = g;  // the RoPE kernel on a copy of q, then the op
        rotated.q = g.q.to(Device::kCPU).to(Device::kCUDA);
        apply_rope_interleaved(rotated.q, pos_gpu, cos_sin, kNope, stream());
        const Tensor want = fused(rotated);
        MlaAbsorbedArgs inside = g;  // the op on the unrotated q
        inside.positions = pos_gpu;
        inside.cos_sin = cos_sin;
        const Tensor q_before = to_host(g.q);
        const Tensor got = fused(inside);
        EXPECT_EQ(mismatches(bf16_bits(got), bf16_bits(want)), 0) << (halves ? "halves" : "one cluster");
        EXPECT_EQ(mismatches(bf16_bits(to_host(g.q)), bf16_bits(q_before)), 0) << "q was written";
      }
    }
  }
}

// Small cases for compute-sanitizer (memcheck, racecheck, synccheck): every path of the kernel at
// a size the tools finish quickly: CTAs without blocks, one block, three stages in use, a mixed
// batch.
TEST_F(MlaAbsorbedCuda, SmallBatchOne) { check({200}, 21); }
TEST_F(MlaAbsorbedCuda, SmallBlocksPerCta) { check({64 * 16 * 4 + 5}, 22); }
TEST_F(MlaAbsorbedCuda, SmallMixed) { check({1, 130, 1100}, 23); }
TEST_F(MlaAbsorbedCuda, SmallHeadGroups) {
  check({1100}, 24, 32);  // two clusters a head group (halves) where the GPU holds 4
  check({200, 1}, 25, 32);
  check({700}, 26, 64);
}
TEST_F(MlaAbsorbedCuda, SmallHeadGroupsHalvesSameBitsAsOneCluster) {
  if (sm90::absorbed_max_active_clusters() < 4) GTEST_SKIP() << "this GPU holds no 4 clusters of 16 CTAs";
  MlaAbsorbedArgs g = to_gpu(make_problem({1025}, 27, 32));  // 2 clusters, or 4 with halves
  g.split_heads = false;
  const Tensor one = fused(g);
  g.split_heads = true;
  EXPECT_EQ(mismatches(bf16_bits(fused(g)), bf16_bits(one)), 0);
}

}  // namespace
}  // namespace mlaserve::ops
