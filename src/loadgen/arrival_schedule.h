// When each request of a benchmark is sent, relative to the start of the run.
//
// A fixed request rate is a Poisson process: the gaps between arrivals are independent and
// exponential with mean 1/rate, the first request leaves at t = 0. An infinite rate sends
// everything at t = 0 (the concurrency limit, if any, then paces the run). The draws come from
// std::mt19937_64 and an explicit inverse CDF (not std::exponential_distribution, whose output
// differs between standard libraries), so a seed gives the same schedule everywhere.
#pragma once

#include <cstdint>
#include <vector>

namespace mlaserve::loadgen {

// `count` send times in seconds, non-decreasing. rate in requests/s, > 0 or +infinity.
std::vector<double> poisson_arrivals(int64_t count, double rate, uint64_t seed);

// A uniform double in [0, 1) from the top 53 bits of one 64-bit draw.
double unit_uniform(uint64_t bits);

}  // namespace mlaserve::loadgen
