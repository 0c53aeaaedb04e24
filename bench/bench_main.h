// The entry of every GPU benchmark program: main() hands its body to run_program, which returns
// the body's exit status, or prints "<program>: <error>" to stderr and returns 1 when the body
// throws (MLA_CHECK and MLA_CUDA_CHECK throw on a bad shape or a failed CUDA call).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

namespace mlaserve::bench {

// The command line of a benchmark whose only flags are --out DIR and --reps N (either may be
// left out: `out_dir` and `*reps` keep what the caller set; reps null: no --reps flag). False, with
// the usage printed, on anything else.
inline bool parse_out_and_reps(int argc, char** argv, std::string& out_dir, int* reps) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) {
      out_dir = argv[++i];
    } else if (reps != nullptr && a == "--reps" && i + 1 < argc) {
      *reps = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--out DIR]%s\n", argv[0], reps != nullptr ? " [--reps N]" : "");
      return false;
    }
  }
  return true;
}

inline bool parse_out_and_reps(int argc, char** argv, std::string& out_dir, int& reps) {
  return parse_out_and_reps(argc, argv, out_dir, &reps);
}

// The command line of a benchmark whose only flag is --out DIR.
inline bool parse_out(int argc, char** argv, std::string& out_dir) {
  return parse_out_and_reps(argc, argv, out_dir, nullptr);
}

// A comma-separated list of integers ("1,8,64"), as the benchmarks' list flags take them.
inline std::vector<int64_t> parse_int_list(const std::string& s) {
  std::vector<int64_t> out;
  for (size_t p = 0; p < s.size();) {
    const size_t e = std::min(s.find(',', p), s.size());
    out.push_back(std::stoll(s.substr(p, e - p)));
    p = e + 1;
  }
  return out;
}

inline int run_program(const char* program, int (*run)(int argc, char** argv), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace mlaserve::bench
