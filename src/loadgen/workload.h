// The requests a serving benchmark sends: a prompt (text or token ids) and how many tokens to
// generate. Either drawn at random around given mean lengths, or read from a JSONL dataset,
// one request per line:
//   {"prompt": "Hello", "max_tokens": 64}
//   {"prompt_ids": [1, 2, 3], "max_tokens": 16}
// Exactly one of prompt / prompt_ids; max_tokens a positive integer; other keys are ignored.
#pragma once

#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <vector>

namespace mlaserve::loadgen {

struct LoadRequest {
  std::optional<std::string> prompt;  // text, tokenized by the server
  std::vector<int32_t> prompt_ids;    // used when prompt is empty
  int64_t max_tokens = 0;             // exact output length (requests are sent with ignore_eos)
};

struct RandomWorkloadOptions {
  int64_t num_requests = 100;
  int64_t input_len = 128;     // mean prompt tokens
  int64_t output_len = 64;     // mean output tokens
  double range_ratio = 0.25;   // lengths uniform in [mean * (1 - r), mean * (1 + r)], r in [0, 1)
  int64_t vocab = 1000;        // prompt ids uniform in [0, vocab)
  uint64_t seed = 0;
};

// Reproducible for a seed on every platform (std::mt19937_64 and explicit integer mapping).
std::vector<LoadRequest> random_workload(const RandomWorkloadOptions& options);

// Fails (mlaserve::Error naming `source` and the 1-based line) on a line that is not a JSON
// object of the form above. Blank lines are skipped; an empty dataset is an error.
std::vector<LoadRequest> parse_dataset(std::istream& in, const std::string& source);
std::vector<LoadRequest> load_dataset(const std::string& path);

}  // namespace mlaserve::loadgen
