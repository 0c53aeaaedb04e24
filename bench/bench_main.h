// The entry of every GPU benchmark program: main() hands its body to run_program, which returns
// the body's exit status, or prints "<program>: <error>" to stderr and returns 1 when the body
// throws (MLA_CHECK and MLA_CUDA_CHECK throw on a bad shape or a failed CUDA call).
#pragma once

#include <cstdio>
#include <exception>

namespace mlaserve::bench {

inline int run_program(const char* program, int (*run)(int argc, char** argv), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace mlaserve::bench
