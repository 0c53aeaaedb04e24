#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "loadgen/arrival_schedule.h"

namespace mlaserve::loadgen {
namespace {

TEST(ArrivalSchedule, InfiniteRateSendsEverythingAtOnce) {
  const auto t = poisson_arrivals(50, std::numeric_limits<double>::infinity(), 1);
  ASSERT_EQ(t.size(), 50u);
  for (double x : t) EXPECT_EQ(x, 0.0);
  EXPECT_TRUE(poisson_arrivals(0, 4.0, 1).empty());
}

TEST(ArrivalSchedule, SeedReproducesTheSchedule) {
  const auto a = poisson_arrivals(1000, 8.0, 42);
  EXPECT_EQ(a, poisson_arrivals(1000, 8.0, 42));
  EXPECT_NE(a, poisson_arrivals(1000, 8.0, 43));
  EXPECT_EQ(a.front(), 0.0);
  for (size_t i = 1; i < a.size(); ++i) EXPECT_GE(a[i], a[i - 1]);
}

// The gaps are Exp(rate): mean 1/rate, standard deviation 1/rate, and P(gap < 1/rate) = 1 - 1/e.
// With n gaps the sample mean's standard error is 1/(rate sqrt(n)); the bounds are 5 of them.
TEST(ArrivalSchedule, GapsAreExponentialWithTheRate) {
  for (const double rate : {0.5, 4.0, 100.0}) {
    const int64_t n = 20000;
    const auto t = poisson_arrivals(n + 1, rate, 7);
    double sum = 0, sum_sq = 0;
    int64_t below_mean = 0;
    for (size_t i = 1; i < t.size(); ++i) {
      const double gap = t[i] - t[i - 1];
      sum += gap;
      sum_sq += gap * gap;
      below_mean += gap < 1.0 / rate;
    }
    const double mean = sum / double(n);
    const double sd = std::sqrt(sum_sq / double(n) - mean * mean);
    EXPECT_NEAR(mean * rate, 1.0, 5.0 / std::sqrt(double(n))) << "rate " << rate;
    EXPECT_NEAR(sd * rate, 1.0, 0.05) << "rate " << rate;  // the sd's standard error is about sqrt(2/n) ~ 0.01
    const double p = 1.0 - std::exp(-1.0);
    EXPECT_NEAR(double(below_mean) / double(n), p, 5.0 * std::sqrt(p * (1 - p) / double(n))) << "rate " << rate;
    // The whole run lasts about n / rate.
    EXPECT_NEAR(t.back() * rate / double(n), 1.0, 5.0 / std::sqrt(double(n)));
  }
}

TEST(ArrivalSchedule, RejectsBadRates) {
  EXPECT_THROW(poisson_arrivals(10, 0.0, 1), Error);
  EXPECT_THROW(poisson_arrivals(10, -2.0, 1), Error);
  EXPECT_THROW(poisson_arrivals(-1, 1.0, 1), Error);
}

TEST(ArrivalSchedule, UnitUniformCoversZeroToOne) {
  EXPECT_EQ(unit_uniform(0), 0.0);
  EXPECT_LT(unit_uniform(~uint64_t{0}), 1.0);
  EXPECT_GT(unit_uniform(~uint64_t{0}), 1.0 - 1e-15);
}

}  // namespace
}  // namespace mlaserve::loadgen
