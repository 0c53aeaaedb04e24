// The CPU ops' threads (ops/cpu_util.h, parallel_for): every item of [0, n) run once, the small
// calls on the calling thread, an item's exception rethrown; and the large linears split over
// threads give the bits of the same op run in pieces too small to be split (one token at a time).
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "op_test_util.h"
#include "ops/cpu_util.h"
#include "ops/fp8_quant.h"
#include "ops/linear.h"
#include "ops/linear_fp8.h"

namespace mlaserve::ops {
namespace {

using testing::poisoned;
using testing::random_tensor;

TEST(ParallelFor, RunsEveryItemOnceOverTheRanges) {
  for (const int64_t n : {1, 2, 7, 64, 1000, 4099}) {
    std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
    std::atomic<int> calls{0};
    cpu::parallel_for(n, cpu::kMinWorkPerThread, [&](int64_t begin, int64_t end) {
      ASSERT_LT(begin, end);
      ++calls;
      for (int64_t i = begin; i < end; ++i) ++seen[static_cast<size_t>(i)];
    });
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(seen[static_cast<size_t>(i)].load(), 1) << "item " << i << " of " << n;
    const int64_t cores = std::max<unsigned>(1, std::thread::hardware_concurrency());
    EXPECT_LE(calls.load(), std::min(n, cores)) << n << " items";
  }
}

TEST(ParallelFor, SmallWorkStaysOnTheCallingThread) {
  const std::thread::id caller = std::this_thread::get_id();
  int calls = 0;
  cpu::parallel_for(1000, cpu::kMinWorkPerThread / 1000, [&](int64_t begin, int64_t end) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    EXPECT_EQ(begin, 0);
    EXPECT_EQ(end, 1000);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
  cpu::parallel_for(0, 1, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 1) << "no items, no call";
}

TEST(ParallelFor, RethrowsAnItemsException) {
  std::atomic<int64_t> done{0};
  EXPECT_THROW(cpu::parallel_for(64, cpu::kMinWorkPerThread,
                                 [&](int64_t begin, int64_t end) {
                                   if (begin <= 63 && 63 < end) throw std::runtime_error("item 63");
                                   done += end - begin;
                                 }),
               std::runtime_error);
  EXPECT_LT(done.load(), 64);  // the throwing range did not count its items; the others ended
}

// out [T, N] of `op` on all of x at once (split over threads: T·N·K well above the threshold)
// against op one row of x at a time (1·N·K multiply-adds: one thread).
template <class Op>
void expect_same_bits_in_one_call_and_by_rows(const Tensor& x, int64_t n, const Op& op) {
  const int64_t t = x.dim(0);
  Tensor whole = poisoned({t, n}, DType::kF32);
  op(x, whole);
  for (int64_t i = 0; i < t; ++i) {
    Tensor row = poisoned({1, n}, DType::kF32);
    op(x.slice(i, i + 1), row);
    ASSERT_EQ(std::memcmp(row.raw(), whole.data<float>() + i * n, static_cast<size_t>(n) * sizeof(float)), 0)
        << "row " << i;
  }
}

TEST(CpuThreads, LinearGivesTheBitsOfOneThread) {
  std::mt19937_64 rng(41);
  const int64_t t = 48, k = 1024, n = 1000;  // 49 M multiply-adds; N not a multiple of the 16-row tile
  ASSERT_GT(t * n * k, 2 * cpu::kMinWorkPerThread);
  ASSERT_LT(n * k, cpu::kMinWorkPerThread) << "one row must stay on one thread";
  const Tensor x = random_tensor({t, k}, DType::kF32, rng);
  for (const DType wt : {DType::kF32, DType::kBF16}) {
    const Tensor w = random_tensor({n, k}, wt, rng, 0.05f);
    expect_same_bits_in_one_call_and_by_rows(x, n, [&](const Tensor& xs, Tensor& out) { linear_cpu(xs, w, out); });
  }
}

TEST(CpuThreads, LinearFp8GivesTheBitsOfOneThread) {
  std::mt19937_64 rng(42);
  const int64_t t = 48, k = 1024, n = 1000;
  Tensor x_q = Tensor::empty({t, k}, DType::kF8E4M3), x_s = Tensor::empty({t, fp8_num_blocks(k)}, DType::kF32);
  quantize_activations_fp8_cpu(random_tensor({t, k}, DType::kF32, rng), {}, x_q, x_s);
  const Tensor w_q = random_tensor({n, k}, DType::kF8E4M3, rng, 0.5f);
  Tensor w_s = Tensor::empty({fp8_num_blocks(n), fp8_num_blocks(k)}, DType::kF32);
  std::uniform_real_distribution<float> scale(1e-4f, 1e-2f);
  for (int64_t i = 0; i < w_s.numel(); ++i) w_s.data<float>()[i] = scale(rng);
  Tensor whole = poisoned({t, n}, DType::kF32);
  linear_fp8_w8a8_cpu(x_q, x_s, w_q, w_s, whole);
  for (int64_t i = 0; i < t; ++i) {
    Tensor row = poisoned({1, n}, DType::kF32);
    linear_fp8_w8a8_cpu(x_q.slice(i, i + 1), x_s.slice(i, i + 1), w_q, w_s, row);
    ASSERT_EQ(std::memcmp(row.raw(), whole.data<float>() + i * n, static_cast<size_t>(n) * sizeof(float)), 0)
        << "row " << i;
  }
}

}  // namespace
}  // namespace mlaserve::ops
