#include "loadgen/metrics.h"

#include <fmt/format.h>

namespace mlaserve::loadgen {
namespace {

constexpr size_t kErrorsKept = 5;

void add_summary(nlohmann::json& j, const std::string& name, const Summary& s) {
  j["mean_" + name + "_ms"] = 1e3 * s.mean;
  j["median_" + name + "_ms"] = 1e3 * s.median;
  j["p90_" + name + "_ms"] = 1e3 * s.p90;
  j["p99_" + name + "_ms"] = 1e3 * s.p99;
}

}  // namespace

BenchMetrics aggregate(const std::vector<RequestRecord>& records, double duration_s) {
  BenchMetrics m;
  m.duration_s = duration_s;
  std::vector<double> ttft, tpot, itl, e2e;
  for (const RequestRecord& r : records) {
    if (!r.ok) {
      ++m.failed;
      if (m.errors.size() < kErrorsKept) m.errors.push_back(r.error);
      continue;
    }
    ++m.completed;
    m.total_input_tokens += r.prompt_tokens;
    m.total_output_tokens += r.output_tokens;
    ttft.push_back(r.ttft_s);
    e2e.push_back(r.e2e_s);
    if (r.output_tokens > 1) tpot.push_back((r.e2e_s - r.ttft_s) / static_cast<double>(r.output_tokens - 1));
    itl.insert(itl.end(), r.itl_s.begin(), r.itl_s.end());
  }
  if (duration_s > 0) {
    m.request_throughput = static_cast<double>(m.completed) / duration_s;
    m.output_throughput = static_cast<double>(m.total_output_tokens) / duration_s;
    m.total_token_throughput = static_cast<double>(m.total_input_tokens + m.total_output_tokens) / duration_s;
  }
  m.ttft_s = summarize(ttft);
  m.tpot_s = summarize(tpot);
  m.itl_s = summarize(itl);
  m.e2e_s = summarize(e2e);
  return m;
}

nlohmann::json to_json(const BenchMetrics& m) {
  nlohmann::json j = {{"completed", m.completed},
                      {"failed", m.failed},
                      {"duration_s", m.duration_s},
                      {"total_input_tokens", m.total_input_tokens},
                      {"total_output_tokens", m.total_output_tokens},
                      {"request_throughput", m.request_throughput},
                      {"output_throughput", m.output_throughput},
                      {"total_token_throughput", m.total_token_throughput},
                      {"errors", m.errors}};
  add_summary(j, "ttft", m.ttft_s);
  add_summary(j, "tpot", m.tpot_s);
  add_summary(j, "itl", m.itl_s);
  add_summary(j, "e2el", m.e2e_s);
  return j;
}

std::string format_table(const BenchMetrics& m) {
  std::string t;
  auto line = [&t](const std::string& name, const std::string& value) { t += fmt::format("{:<34}{:>14}\n", name, value); };
  line("Successful requests:", fmt::format("{}", m.completed));
  line("Failed requests:", fmt::format("{}", m.failed));
  line("Benchmark duration (s):", fmt::format("{:.2f}", m.duration_s));
  line("Total input tokens:", fmt::format("{}", m.total_input_tokens));
  line("Total output tokens:", fmt::format("{}", m.total_output_tokens));
  line("Request throughput (req/s):", fmt::format("{:.2f}", m.request_throughput));
  line("Output token throughput (tok/s):", fmt::format("{:.1f}", m.output_throughput));
  line("Total token throughput (tok/s):", fmt::format("{:.1f}", m.total_token_throughput));
  t += fmt::format("{:<10}{:>12}{:>12}{:>12}{:>12}\n", "(ms)", "mean", "median", "p90", "p99");
  auto row = [&t](const char* name, const Summary& s) {
    t += fmt::format("{:<10}{:>12.2f}{:>12.2f}{:>12.2f}{:>12.2f}\n", name, 1e3 * s.mean, 1e3 * s.median, 1e3 * s.p90,
                     1e3 * s.p99);
  };
  row("TTFT", m.ttft_s);
  row("TPOT", m.tpot_s);
  row("ITL", m.itl_s);
  row("E2E", m.e2e_s);
  return t;
}

}  // namespace mlaserve::loadgen
