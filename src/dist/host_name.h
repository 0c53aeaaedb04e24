// This machine's host name: how a rank tells whether another rank's CUDA IPC handle can be opened
// here (dist/logits_ring.h, dist/peer_all_reduce.h).
#pragma once

#include <unistd.h>

#include <string>

#include "core/error.h"

namespace mlaserve::dist {

inline std::string host_name() {
  char name[64] = {};
  MLA_CHECK(gethostname(name, sizeof(name) - 1) == 0, "gethostname failed");
  return name;
}

}  // namespace mlaserve::dist
