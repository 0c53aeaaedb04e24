// kernel_shares and write_trace_csv (bench/kernel_shares.h) on hand-made timelines: each instant
// charged to the oldest running kernel, the charges adding up to the span, gaps apart.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernel_shares.h"

namespace mlaserve::bench {
namespace {

TracedKernel kernel(const std::string& name, double start_us, double end_us) {
  return {name, static_cast<uint64_t>(start_us * 1e3), static_cast<uint64_t>(end_us * 1e3), 0};
}

const KernelShare& share(const std::vector<KernelShare>& shares, const std::string& name) {
  for (const KernelShare& s : shares) {
    if (s.name == name) return s;
  }
  ADD_FAILURE() << "no share named " << name;
  static const KernelShare none;
  return none;
}

// A chain under programmatic launch: b starts while a runs and waits for it, so a keeps the
// overlap; c follows b. A side-stream kernel inside a's time is charged nothing.
TEST(KernelShares, TheOldestRunningKernelIsCharged) {
  const std::vector<KernelShare> shares =
      kernel_shares({kernel("a", 0, 10), kernel("side", 2, 8), kernel("b", 5, 15), kernel("c", 15, 20)});
  EXPECT_DOUBLE_EQ(share(shares, "a").charged_us, 10.0);
  EXPECT_DOUBLE_EQ(share(shares, "b").charged_us, 5.0);
  EXPECT_DOUBLE_EQ(share(shares, "c").charged_us, 5.0);
  EXPECT_DOUBLE_EQ(share(shares, "side").charged_us, 0.0);
  EXPECT_EQ(shares.front().name, "a") << "the largest charge first";
}

// Launches of one name add up; instants with no kernel running are charged to the gaps; every
// charge together is the span.
TEST(KernelShares, NamesAddUpAndGapsAreApart) {
  const std::vector<KernelShare> shares =
      kernel_shares({kernel("gemv", 0, 4), kernel("norm", 6, 7), kernel("gemv", 7, 9), kernel("norm", 9.5, 10)});
  const KernelShare& gemv = share(shares, "gemv");
  EXPECT_EQ(gemv.launches, 2);
  EXPECT_DOUBLE_EQ(gemv.charged_us, 6.0);
  EXPECT_DOUBLE_EQ(gemv.mean_us, 3.0);
  EXPECT_DOUBLE_EQ(share(shares, "norm").charged_us, 1.5);
  EXPECT_DOUBLE_EQ(share(shares, "(no kernel running)").charged_us, 2.5);
  double total = 0.0;
  for (const KernelShare& s : shares) total += s.charged_us;
  EXPECT_DOUBLE_EQ(total, 10.0);
}

// Two runs of the same three kernels, the first late to start (the tracer's start-up), b starting
// inside a (a programmatic launch), listed in the order of their ends: the last run's three are
// kept, in the list's order; a count that is not whole runs is refused.
TEST(KernelShares, TheLastOfRepeatedRunsIsKept) {
  const std::vector<TracedKernel> kernels = {kernel("a", 0, 5000),    kernel("b", 4990, 5300), kernel("c", 5300, 5301),
                                             kernel("a", 5400, 5410), kernel("b", 5405, 5500), kernel("c", 5500, 5502)};
  const std::vector<TracedKernel> last = kernels_of_last_run(kernels, 2);
  ASSERT_EQ(last.size(), 3u);
  EXPECT_EQ(last[0].name, "a");
  EXPECT_EQ(last[0].start_ns, kernels[3].start_ns);
  EXPECT_EQ(last[1].start_ns, kernels[4].start_ns);
  EXPECT_EQ(last[2].start_ns, kernels[5].start_ns);
  EXPECT_EQ(kernels_of_last_run(kernels, 1).size(), kernels.size());
  EXPECT_THROW(kernels_of_last_run(kernels, 4), Error);
  EXPECT_THROW(kernels_of_last_run(kernels, 0), Error);
}

TEST(KernelShares, CsvRowsCarryEachCharge) {
  const std::string path = ::testing::TempDir() + "kernel_shares_test.csv";
  write_trace_csv(path, {kernel("a", 100, 110), kernel("b", 105, 115)});
  std::ifstream in(path);
  std::string header, a, b, extra;
  std::getline(in, header);
  std::getline(in, a);
  std::getline(in, b);
  EXPECT_FALSE(std::getline(in, extra));
  EXPECT_EQ(header, "index,start_us,end_us,duration_us,charged_us,stream,kernel");
  EXPECT_EQ(a, "0,0.000,10.000,10.000,10.000,0,\"a\"");
  EXPECT_EQ(b, "1,5.000,15.000,10.000,5.000,0,\"b\"");
  std::remove(path.c_str());
}

TEST(KernelShares, CsvFolderIsCreated) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "kernel_shares_test_dir" / "traces";
  std::filesystem::remove_all(dir.parent_path());
  write_trace_csv((dir / "t.csv").string(), {kernel("a", 0, 1)});
  EXPECT_TRUE(std::filesystem::exists(dir / "t.csv"));
  std::filesystem::remove_all(dir.parent_path());
}

}  // namespace
}  // namespace mlaserve::bench
