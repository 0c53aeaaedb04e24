// `mlaserve info`: what this build is (version, CUDA backend, GPU visibility).
#include <cstdio>

#include "cli/commands.h"
#include "core/memory.h"

namespace mlaserve::cli {

void register_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Print what this build supports");
  cmd->callback([] {
#ifdef MLASERVE_WITH_CUDA
    const char* backend = "cuda (sm_90a)";
#else
    const char* backend = "cpu only";
#endif
    std::printf("mlaserve 0.1.0\nbackend: %s\ngpu visible: %s\n", backend, cuda_available() ? "yes" : "no");
  });
}

}  // namespace mlaserve::cli
