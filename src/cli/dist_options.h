// The command-line flags of a model split across GPUs (dist/context.h says how the processes
// are launched and meet): --tensor-parallel-size, --pipeline-parallel-size, --expert-split,
// --nnodes, --node-rank, --master-addr, --master-port, --pipeline-micro-batches,
// --pipeline-steps-in-flight, --step-timeout, --peer-all-reduce-max-kib.
#pragma once

#include <CLI/CLI.hpp>

#include "dist/context.h"

namespace mlaserve::cli {

void add_dist_options(CLI::App& cmd, dist::LaunchOptions& options);

}  // namespace mlaserve::cli
