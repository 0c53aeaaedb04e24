#include "ops/rank_order.h"

#include <array>
#include <bit>
#include <cmath>
#include <utility>

#include "core/error.h"

namespace mlaserve::ops {
namespace {

// Ascending in this key is the rank order's value part: larger values first, -0 as +0, NaN first.
uint32_t descending_key(float v) {
  if (std::isnan(v)) return 0;
  const uint32_t b = std::bit_cast<uint32_t>(v == 0.0f ? 0.0f : v);
  const uint32_t ascending = (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
  return ~ascending;  // +inf: 0x007fffff, above NaN's 0
}

}  // namespace

std::vector<int32_t> rank_order(std::span<const float> values, int64_t count) {
  const auto n = values.size();
  MLA_CHECK(count >= 0 && static_cast<size_t>(count) <= n, "rank_order: {} of {} values", count, n);
  MLA_CHECK(n <= static_cast<size_t>(INT32_MAX), "rank_order: {} values exceed int32 ids", n);
  constexpr int kBits = 11;
  constexpr uint32_t kDigits = 1u << kBits;
  std::vector<uint32_t> keys(n), keys_tmp(n);
  std::vector<int32_t> ids(n), ids_tmp(n);
  for (size_t i = 0; i < n; ++i) keys[i] = descending_key(values[i]), ids[i] = static_cast<int32_t>(i);
  for (int shift = 0; shift < 32; shift += kBits) {
    std::array<uint32_t, kDigits> start{};
    for (uint32_t k : keys) ++start[(k >> shift) & (kDigits - 1)];
    if (n > 0 && start[(keys[0] >> shift) & (kDigits - 1)] == n) continue;  // one digit: order unchanged
    uint32_t sum = 0;
    for (uint32_t& s : start) sum += std::exchange(s, sum);  // counts -> first slots
    for (size_t i = 0; i < n; ++i) {  // in input order: stable
      const uint32_t slot = start[(keys[i] >> shift) & (kDigits - 1)]++;
      keys_tmp[slot] = keys[i];
      ids_tmp[slot] = ids[i];
    }
    keys.swap(keys_tmp);
    ids.swap(ids_tmp);
  }
  ids.resize(static_cast<size_t>(count));
  return ids;
}

}  // namespace mlaserve::ops
