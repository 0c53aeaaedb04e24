#include "loadgen/workload.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <random>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mlaserve::loadgen {
namespace {

// Uniform in [lo, hi] (inclusive) from one 64-bit draw; the modulo bias is below 2^-40 for the
// ranges used here.
int64_t uniform_int(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  const auto span = static_cast<uint64_t>(hi - lo) + 1;
  return lo + static_cast<int64_t>(rng() % span);
}

// [mean * (1 - r), mean * (1 + r)], at least 1.
std::pair<int64_t, int64_t> length_range(int64_t mean, double r) {
  const auto lo = static_cast<int64_t>(std::floor(static_cast<double>(mean) * (1.0 - r)));
  const auto hi = static_cast<int64_t>(std::ceil(static_cast<double>(mean) * (1.0 + r)));
  return {std::max<int64_t>(lo, 1), std::max<int64_t>(hi, 1)};
}

LoadRequest parse_line(const std::string& line, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e999
    MLA_FAIL("{}: not JSON: {}", where, e.what());
  }
  MLA_CHECK(j.is_object(), "{}: expected a JSON object, got {}", where, j.type_name());
  const bool has_text = j.contains("prompt");
  const bool has_ids = j.contains("prompt_ids");
  MLA_CHECK(has_text != has_ids, "{}: needs exactly one of \"prompt\" and \"prompt_ids\"", where);
  LoadRequest r;
  if (has_text) {
    MLA_CHECK(j["prompt"].is_string(), "{}: \"prompt\" must be a string", where);
    r.prompt = j["prompt"].get<std::string>();
    MLA_CHECK(!r.prompt->empty(), "{}: \"prompt\" is empty", where);
  } else {
    const nlohmann::json& ids = j["prompt_ids"];
    MLA_CHECK(ids.is_array() && !ids.empty(), "{}: \"prompt_ids\" must be a non-empty array", where);
    for (const nlohmann::json& id : ids) {
      MLA_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 &&
                    id.get<int64_t>() <= std::numeric_limits<int32_t>::max(),
                "{}: \"prompt_ids\" holds {}, not a token id", where, id.dump());
      r.prompt_ids.push_back(id.get<int32_t>());
    }
  }
  MLA_CHECK(j.contains("max_tokens"), "{}: \"max_tokens\" is missing", where);
  const nlohmann::json& m = j["max_tokens"];
  MLA_CHECK(m.is_number_integer() && m.get<int64_t>() > 0, "{}: \"max_tokens\" must be a positive integer, got {}",
            where, m.dump());
  r.max_tokens = m.get<int64_t>();
  return r;
}

}  // namespace

std::vector<LoadRequest> random_workload(const RandomWorkloadOptions& o) {
  MLA_CHECK(o.num_requests > 0, "--num-prompts must be positive, got {}", o.num_requests);
  MLA_CHECK(o.input_len > 0 && o.output_len > 0, "lengths must be positive ({} in, {} out)", o.input_len,
            o.output_len);
  MLA_CHECK(o.range_ratio >= 0.0 && o.range_ratio < 1.0, "range ratio {} outside [0, 1)", o.range_ratio);
  MLA_CHECK(o.vocab > 0 && o.vocab <= std::numeric_limits<int32_t>::max(), "vocab {} out of range", o.vocab);
  std::mt19937_64 rng(o.seed);
  const auto [in_lo, in_hi] = length_range(o.input_len, o.range_ratio);
  const auto [out_lo, out_hi] = length_range(o.output_len, o.range_ratio);
  std::vector<LoadRequest> requests(static_cast<size_t>(o.num_requests));
  for (LoadRequest& r : requests) {
    r.prompt_ids.resize(static_cast<size_t>(uniform_int(rng, in_lo, in_hi)));
    r.max_tokens = uniform_int(rng, out_lo, out_hi);
    for (int32_t& id : r.prompt_ids) id = static_cast<int32_t>(uniform_int(rng, 0, o.vocab - 1));
  }
  return requests;
}

std::vector<LoadRequest> parse_dataset(std::istream& in, const std::string& source) {
  std::vector<LoadRequest> requests;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    requests.push_back(parse_line(line, source + ":" + std::to_string(number)));
  }
  MLA_CHECK(!requests.empty(), "{}: no requests", source);
  return requests;
}

std::vector<LoadRequest> load_dataset(const std::string& path) {
  std::ifstream in(path);
  MLA_CHECK(in.good(), "cannot open dataset {}", path);
  return parse_dataset(in, path);
}

}  // namespace mlaserve::loadgen
