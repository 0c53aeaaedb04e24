// The collectives of test_dist_cuda's world (dist_world.h): NCCL's all-reduce, column gather and
// send/receive over the world; the peer all-reduce of a tensor-parallel group over the whole world
// (dist/peer_all_reduce.h) against the host's sum; and each layout's groups holding their ranks.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "dist_world.h"

namespace mlaserve::dist {
namespace {

using namespace world_test;

// The world: all-reduce, column gather and a send from rank 0 to the last rank.
TEST(NcclCollectives, AllReduceAllGatherSendRecv) {
  REQUIRE_WORLD(g_world);
  Collectives& world = *g_ctx->world();
  const int n_ranks = g_world, last = n_ranks - 1;
  const int64_t n = 4099;  // not a multiple of anything NCCL likes
  const auto mine = rank_values(rank(), n);
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    Tensor t = on_gpu(mine, {n}, dtype);
    world.all_reduce_sum(t, {});
    const std::vector<float> got = t.to_vector();
    std::vector<double> want(static_cast<size_t>(n), 0.0), magnitude(static_cast<size_t>(n), 0.0);
    for (int r = 0; r < n_ranks; ++r) {
      const std::vector<float> v = Tensor::from_floats(rank_values(r, n), {n}, dtype).to_vector();
      for (int64_t i = 0; i < n; ++i) {
        want[i] += v[i];
        magnitude[i] += std::fabs(v[i]);
      }
    }
    // f32: the order of additions may differ (a few ulps); bf16: one rounding per partial sum.
    for (int64_t i = 0; i < n; ++i) {
      const double tol = magnitude[i] * (dtype == DType::kF32 ? 1e-6 : n_ranks * 0.0040);
      ASSERT_NEAR(got[i], want[i], tol) << i;
    }
  }
  // [3, 5] per rank -> [3, 5 · ranks - 1]: the last rank's last column dropped (a padded
  // vocabulary shard).
  const int64_t width = 5 * n_ranks - 1;
  Tensor in = on_gpu(std::vector<float>(mine.begin(), mine.begin() + 15), {3, 5}, DType::kF32);
  Tensor out = Tensor::empty({3, width}, DType::kF32, Device::kCUDA);
  out.fill_bytes(0xff);
  world.all_gather_columns(in, out, {});
  const std::vector<float> g = out.to_vector();
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t c = 0; c < width; ++c) {
      EXPECT_EQ(g[r * width + c], rank_values(static_cast<int>(c / 5), n)[r * 5 + c % 5]) << r << "," << c;
    }
  }
  const auto a = rank_values(0, n);
  Tensor msg = on_gpu(rank() == 0 ? a : std::vector<float>(n, 0.0f), {n}, DType::kF32);
  if (rank() == 0) world.send(msg, last, {});
  if (rank() == last) {
    world.recv(msg, 0, {});
    EXPECT_EQ(msg.to_vector(), a);
  }
}

// The tensor-parallel group over the whole world sums f32 tensors that fit through peer memory
// (dist/peer_all_reduce.h): exactly the host's sum in rank order, on every rank, for sizes from 4
// values to the limit (both protocols: packets up to 128 KiB, flags above), eager and replayed in a
// CUDA graph, the two mixed (so the slots and epochs of its blocks cycle across both); past the
// limit and odd sizes go to NCCL (a few ulps).
TEST(PeerAllReduce, SumsInRankOrderEagerAndInGraphs) {
  REQUIRE_WORLD(g_world);
  auto& group = *groups_of(SplitKind{g_world, 1}).tp;
  if (group.peer_all_reduce_bytes() == 0) GTEST_SKIP() << "the GPUs cannot map each other's memory (logged above)";
  const int64_t limit = static_cast<int64_t>(kPeerAllReduceBytes / sizeof(float));
  // A blocking stream: the graph's inputs come by cudaMemcpy from pageable memory, whose copy may
  // still be landing when the call returns, ordered only before later work of the legacy stream
  // and of the streams that synchronise with it.
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  const Stream stream{s};
  int mismatches = 0;  // counted, not asserted per element: every rank must make every call
  // The tensor of `n` values from `seed`, summed; got against the host's sum in rank order.
  auto check = [&](Tensor& t, int64_t n, int seed, bool exact) {
    const std::vector<float> got = t.to_vector();
    std::vector<float> want(static_cast<size_t>(n), 0.0f);
    std::vector<float> magnitude(static_cast<size_t>(n), 0.0f);
    for (int r = 0; r < g_world; ++r) {
      const std::vector<float> v = rank_values(r * 1000 + seed, n);
      for (int64_t i = 0; i < n; ++i) {
        want[i] = r == 0 ? v[i] : want[i] + v[i];
        magnitude[i] += std::fabs(v[i]);
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      const bool ok = exact ? got[i] == want[i] : std::fabs(got[i] - want[i]) <= 1e-6f * magnitude[i];
      if (!ok && mismatches++ < 5) {
        ADD_FAILURE() << "n " << n << " seed " << seed << " element " << i << ": " << got[i] << " vs " << want[i];
      }
    }
  };
  int seed = 0;
  for (int round = 0; round < 3; ++round) {
    for (const int64_t n : {int64_t{4}, int64_t{2048}, int64_t{4096}, int64_t{32768}, int64_t{32772},
                            int64_t{7168} * 16, int64_t{2} * 7168 * 16, limit, limit + 4, int64_t{2050}}) {
      ++seed;
      Tensor t = on_gpu(rank_values(rank() * 1000 + seed, n), {n}, DType::kF32);
      group.all_reduce_sum(t, stream);
      ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
      check(t, n, seed, /*exact=*/n <= limit && n % 4 == 0);
    }
  }
  // A graph of three sums (a by packets twice, b by flags), replayed with new inputs, with eager sums between.
  Tensor a = Tensor::empty({2048}, DType::kF32, Device::kCUDA),
         b = Tensor::empty({7168 * 16}, DType::kF32, Device::kCUDA);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
  group.all_reduce_sum(a, stream);
  group.all_reduce_sum(b, stream);
  group.all_reduce_sum(a, stream);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int replay = 0; replay < 4; ++replay) {
    ++seed;
    const std::vector<float> va = rank_values(rank() * 1000 + seed, 2048),
                             vb = rank_values(rank() * 1000 + seed, 7168 * 16);
    ASSERT_EQ(cudaMemcpy(a.raw(), va.data(), a.nbytes(), cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(b.raw(), vb.data(), b.nbytes(), cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    check(b, 7168 * 16, seed, true);
    // a was summed twice: the sum S in rank order, then S + S + ... in rank order.
    std::vector<float> once(2048, 0.0f);
    for (int r = 0; r < g_world; ++r) {
      const std::vector<float> v = rank_values(r * 1000 + seed, 2048);
      for (int64_t i = 0; i < 2048; ++i) once[i] = r == 0 ? v[i] : once[i] + v[i];
    }
    const std::vector<float> got = a.to_vector();
    for (int64_t i = 0; i < 2048; ++i) {
      float twice = once[i];
      for (int r = 1; r < g_world; ++r) twice += once[i];
      if (got[i] != twice && mismatches++ < 5) {
        ADD_FAILURE() << "graph, element " << i << ": " << got[i] << " vs " << twice;
      }
    }
    ++seed;  // an eager sum between two replays
    Tensor t = on_gpu(rank_values(rank() * 1000 + seed, 4096), {4096}, DType::kF32);
    group.all_reduce_sum(t, stream);
    ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    check(t, 4096, seed, true);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(s);
  EXPECT_EQ(mismatches, 0);
}

// Each layout's groups hold the ranks they should: an all-reduce of one-hot rows says who took
// part, a column gather says in which order, and each stage hands its rank to the next one over
// the pipeline group (numbered by stage, as the model's send/recv of the residual stream are).
class LayoutGroupsTest : public ::testing::TestWithParam<SplitKind> {};

TEST_P(LayoutGroupsTest, GroupsHoldTheirRanks) {
  const SplitKind kind = GetParam();
  REQUIRE_WORLD(kind.world());
  LayoutGroups& g = groups_of(kind);
  const ParallelConfig& pc = g.parallel;
  std::set<int> want_tp, want_pp;
  for (int t = 0; t < pc.tp_size; ++t) want_tp.insert(pc.rank_of(pc.pp_rank(), t));
  for (int p = 0; p < pc.pp_size; ++p) want_pp.insert(pc.rank_of(p, pc.tp_rank()));
  ASSERT_EQ(g.tp->size(), pc.tp_size);
  ASSERT_EQ(g.pp->size(), pc.pp_size);
  EXPECT_EQ(g.tp->rank(), pc.tp_rank());
  EXPECT_EQ(g.pp->rank(), pc.pp_rank());
  for (auto [group, want] : {std::pair{g.tp.get(), want_tp}, std::pair{g.pp.get(), want_pp}}) {
    std::vector<float> one_hot(static_cast<size_t>(g_world), 0.0f);
    one_hot[static_cast<size_t>(rank())] = 1.0f;
    Tensor t = on_gpu(one_hot, {g_world}, DType::kF32);
    group->all_reduce_sum(t, {});
    std::set<int> got;
    const std::vector<float> sum = t.to_vector();
    for (int r = 0; r < g_world; ++r) {
      if (sum[static_cast<size_t>(r)] == 1.0f) {
        got.insert(r);
      } else {
        EXPECT_EQ(sum[static_cast<size_t>(r)], 0.0f) << r;
      }
    }
    EXPECT_EQ(got, want) << "rank " << rank();
  }
  Tensor mine = on_gpu({static_cast<float>(rank())}, {1, 1}, DType::kF32);
  Tensor all = Tensor::empty({1, pc.tp_size}, DType::kF32, Device::kCUDA);
  g.tp->all_gather_columns(mine, all, {});
  const std::vector<float> order = all.to_vector();
  for (int t = 0; t < pc.tp_size; ++t) {
    EXPECT_EQ(order[static_cast<size_t>(t)], pc.rank_of(pc.pp_rank(), t)) << t;
  }
  Tensor from = on_gpu({-1.0f}, {1, 1}, DType::kF32);
  if (pc.pp_rank() > 0) g.pp->recv(from, pc.pp_rank() - 1, {});
  if (pc.pp_rank() + 1 < pc.pp_size) g.pp->send(mine, pc.pp_rank() + 1, {});
  if (pc.pp_rank() > 0) {
    EXPECT_EQ(from.to_vector()[0], pc.rank_of(pc.pp_rank() - 1, pc.tp_rank()));
  }
}

std::string layout_name(const ::testing::TestParamInfo<SplitKind>& info) { return kind_name(info.param); }

INSTANTIATE_TEST_SUITE_P(Layouts, LayoutGroupsTest,
                         ::testing::Values(SplitKind{2, 1}, SplitKind{1, 2}, SplitKind{4, 1}, SplitKind{2, 2},
                                           SplitKind{1, 4}),
                         layout_name);

}  // namespace
}  // namespace mlaserve::dist
