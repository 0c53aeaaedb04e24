// CHECK(call) for the standalone probes in tools/ (compiled alone with nvcc): a CUDA runtime or
// driver call that returns nonzero prints where and exits.
#pragma once

#include <cstdio>
#include <cstdlib>

#define CHECK(x)                                                                    \
  do {                                                                              \
    auto e = (x);                                                                   \
    if (e != 0) {                                                                   \
      std::printf("%s:%d: %s failed (%d)\n", __FILE__, __LINE__, #x, int(e));        \
      std::exit(1);                                                                 \
    }                                                                               \
  } while (0)
