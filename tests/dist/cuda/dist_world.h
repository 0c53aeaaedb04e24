// The world of test_dist_cuda's processes, shared by its files: the NCCL world of every rank (null
// without enough GPUs), the layouts split from it, and the helpers of its collective tests. main()
// (dist_cuda_test.cc) starts the ranks and sets the world; every file's cases run on every rank in
// the same order (one binary, one registration order).
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "dist/context.h"
#include "dist/nccl_collectives.h"
#include "dist/parallel_config.h"

namespace mlaserve::dist::world_test {

inline DistContext* g_ctx = nullptr;  // the NCCL world of every rank; null without enough GPUs
inline int g_world = 2;               // MLASERVE_TEST_WORLD

inline int rank() { return g_ctx->parallel().rank; }

// A split: tp_size · pp_size ranks.
struct SplitKind {
  int tp, pp;
  int world() const { return tp * pp; }
};

inline std::string kind_name(SplitKind k) { return "tp" + std::to_string(k.tp) + "_pp" + std::to_string(k.pp); }
inline void PrintTo(const SplitKind& k, std::ostream* os) { *os << kind_name(k); }

#define REQUIRE_WORLD(n)                                                                                 \
  if (g_ctx == nullptr) GTEST_SKIP() << "needs " << g_world << " GPUs";                                  \
  if ((n) != g_world) GTEST_SKIP() << "a case of a world of " << (n) << " ranks (MLASERVE_TEST_WORLD=" << (n) \
                                   << "); this run has " << g_world

// The peer all-reduce's limit of mlaserve's tensor-parallel groups (LaunchOptions' default).
inline const size_t kPeerAllReduceBytes = static_cast<size_t>(LaunchOptions{}.peer_all_reduce_max_kib) * 1024;

// One layout's groups, split from the world communicator as DistContext::join splits them.
struct LayoutGroups {
  ParallelConfig parallel;
  std::unique_ptr<NcclCollectives> tp, pp;
};

// Made once per layout and kept (every rank asks in the same order, as NCCL's split needs).
inline std::map<std::pair<int, int>, LayoutGroups> g_groups;

inline LayoutGroups& groups_of(SplitKind kind) {
  auto it = g_groups.find({kind.tp, kind.pp});
  if (it != g_groups.end()) return it->second;
  auto* world = dynamic_cast<NcclCollectives*>(g_ctx->world());
  const ParallelConfig pc{kind.tp, kind.pp, rank()};
  LayoutGroups g{pc, world->split(pc.pp_rank(), pc.tp_rank()), world->split(pc.tp_rank(), pc.pp_rank())};
  if (kind.tp > 1) {  // as DistContext::join makes them (mlaserve's default size)
    const std::string why = g.tp->enable_peer_all_reduce(kPeerAllReduceBytes);
    if (!why.empty() && rank() == 0) {
      std::printf("  %s: tensor-parallel all-reduces by NCCL: %s\n", kind_name(kind).c_str(), why.c_str());
    }
  }
  return g_groups.emplace(std::make_pair(kind.tp, kind.pp), std::move(g)).first->second;
}

// n values uniform in [-2, 2) from seed r (a rank's tensor in the collective tests).
inline std::vector<float> rank_values(int r, int64_t n) {
  std::mt19937 rng(1234 + r);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

inline Tensor on_gpu(const std::vector<float>& v, Shape shape, DType dtype) {
  return Tensor::from_floats(v, std::move(shape), dtype).to(Device::kCUDA);
}

}  // namespace mlaserve::dist::world_test
