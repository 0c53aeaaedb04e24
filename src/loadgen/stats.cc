#include "loadgen/stats.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace mlaserve::loadgen {

double mean(const std::vector<double>& values) {
  double sum = 0;
  for (double v : values) sum += v;
  return values.empty() ? 0.0 : sum / static_cast<double>(values.size());
}

double percentile(std::vector<double> values, double p) {
  MLA_CHECK(p >= 0.0 && p <= 100.0, "percentile {} outside [0, 100]", p);
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const double pos = p / 100.0 * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (pos - static_cast<double>(lo));
}

Summary summarize(const std::vector<double>& values) {
  Summary s;
  s.count = values.size();
  s.mean = mean(values);
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  s.median = percentile(sorted, 50);
  s.p90 = percentile(sorted, 90);
  s.p99 = percentile(sorted, 99);
  return s;
}

}  // namespace mlaserve::loadgen
