// Summary statistics over latency samples: mean and linear-interpolation percentiles (the
// definition numpy.percentile uses by default, so figures compare with Python peers' reports).
#pragma once

#include <cstddef>
#include <vector>

namespace mlaserve::loadgen {

double mean(const std::vector<double>& values);  // 0 for no values

// p in [0, 100]; the value at rank p/100 * (n - 1) of the sorted samples, interpolated
// linearly between neighbours. 0 for no values.
double percentile(std::vector<double> values, double p);

struct Summary {
  size_t count = 0;
  double mean = 0;
  double median = 0;
  double p90 = 0;
  double p99 = 0;
};

Summary summarize(const std::vector<double>& values);

}  // namespace mlaserve::loadgen
