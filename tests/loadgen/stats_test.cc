#include <gtest/gtest.h>

#include "core/error.h"
#include "loadgen/metrics.h"
#include "loadgen/stats.h"

namespace mlaserve::loadgen {
namespace {

TEST(Stats, PercentileInterpolatesLikeNumpy) {
  // numpy.percentile([4, 1, 3, 2], q) for q = 0, 50, 90, 99, 100.
  const std::vector<double> v = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1.0);
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile(v, 90), 3.7);
  EXPECT_DOUBLE_EQ(percentile(v, 99), 3.97);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 4.0);
  EXPECT_DOUBLE_EQ(percentile({7.5}, 99), 7.5);
  EXPECT_DOUBLE_EQ(percentile({}, 50), 0.0);
  EXPECT_THROW(percentile(v, 101), Error);
  EXPECT_THROW(percentile(v, -1), Error);
}

TEST(Stats, SummaryOfOneToHundred) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  const Summary s = summarize(v);
  EXPECT_EQ(s.count, 100u);
  EXPECT_DOUBLE_EQ(s.mean, 50.5);
  EXPECT_DOUBLE_EQ(s.median, 50.5);
  EXPECT_DOUBLE_EQ(s.p90, 90.1);   // rank 0.9 * 99 = 89.1 -> 90 + 0.1
  EXPECT_DOUBLE_EQ(s.p99, 99.01);  // rank 98.01 -> 99 + 0.01
}

RequestRecord record(double ttft, double e2e, int64_t in, int64_t out, std::vector<double> itl) {
  RequestRecord r;
  r.ok = true;
  r.ttft_s = ttft;
  r.e2e_s = e2e;
  r.prompt_tokens = in;
  r.output_tokens = out;
  r.itl_s = std::move(itl);
  r.finish_reason = "length";
  return r;
}

TEST(Metrics, AggregateCountsOnlyCompletedRequests) {
  RequestRecord failed;
  failed.error = "HTTP 400: bad";
  failed.output_tokens = 99;
  const std::vector<RequestRecord> records = {
      record(0.1, 1.1, 10, 11, {0.1, 0.1, 0.1}),  // TPOT (1.1 - 0.1) / 10 = 0.1
      record(0.3, 0.7, 20, 5, {0.2, 0.2}),        // TPOT 0.4 / 4 = 0.1
      record(0.2, 0.2, 30, 1, {}),                // one token: no TPOT
      failed};
  const BenchMetrics m = aggregate(records, 2.0);
  EXPECT_EQ(m.completed, 3);
  EXPECT_EQ(m.failed, 1);
  ASSERT_EQ(m.errors.size(), 1u);
  EXPECT_EQ(m.errors[0], "HTTP 400: bad");
  EXPECT_EQ(m.total_input_tokens, 60);
  EXPECT_EQ(m.total_output_tokens, 17);
  EXPECT_DOUBLE_EQ(m.request_throughput, 1.5);
  EXPECT_DOUBLE_EQ(m.output_throughput, 8.5);
  EXPECT_DOUBLE_EQ(m.total_token_throughput, 38.5);
  EXPECT_NEAR(m.ttft_s.mean, 0.2, 1e-12);
  EXPECT_NEAR(m.ttft_s.median, 0.2, 1e-12);
  EXPECT_EQ(m.tpot_s.count, 2u);
  EXPECT_NEAR(m.tpot_s.mean, 0.1, 1e-12);
  EXPECT_EQ(m.itl_s.count, 5u);  // pooled over requests
  EXPECT_NEAR(m.itl_s.mean, 0.14, 1e-12);
  EXPECT_NEAR(m.e2e_s.p90, 0.7 + 0.8 * (1.1 - 0.7), 1e-12);

  const nlohmann::json j = to_json(m);
  EXPECT_NEAR(j.at("mean_ttft_ms").get<double>(), 200.0, 1e-9);
  EXPECT_NEAR(j.at("median_tpot_ms").get<double>(), 100.0, 1e-9);
  EXPECT_EQ(j.at("completed").get<int64_t>(), 3);
  EXPECT_TRUE(j.contains("p99_itl_ms"));
  EXPECT_TRUE(j.contains("p99_e2el_ms"));
  EXPECT_NE(format_table(m).find("TTFT"), std::string::npos);
}

TEST(Metrics, NothingCompleted) {
  RequestRecord failed;
  failed.error = "connect: refused";
  const BenchMetrics m = aggregate({failed, failed}, 0.0);
  EXPECT_EQ(m.completed, 0);
  EXPECT_EQ(m.failed, 2);
  EXPECT_EQ(m.request_throughput, 0.0);
  EXPECT_EQ(m.ttft_s.count, 0u);
  EXPECT_EQ(m.ttft_s.mean, 0.0);
}

}  // namespace
}  // namespace mlaserve::loadgen
