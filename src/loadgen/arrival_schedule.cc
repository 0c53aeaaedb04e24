#include "loadgen/arrival_schedule.h"

#include <cmath>
#include <random>

#include "core/error.h"

namespace mlaserve::loadgen {

double unit_uniform(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

std::vector<double> poisson_arrivals(int64_t count, double rate, uint64_t seed) {
  MLA_CHECK(count >= 0, "negative request count {}", count);
  MLA_CHECK(rate > 0.0, "request rate must be positive or inf, got {}", rate);
  std::vector<double> times(static_cast<size_t>(count), 0.0);
  if (std::isinf(rate)) return times;
  std::mt19937_64 rng(seed);
  double t = 0.0;
  for (size_t i = 1; i < times.size(); ++i) {
    // Inverse CDF of Exp(rate): -ln(1 - u) / rate, with 1 - u in (0, 1].
    t += -std::log1p(-unit_uniform(rng())) / rate;
    times[i] = t;
  }
  return times;
}

}  // namespace mlaserve::loadgen
