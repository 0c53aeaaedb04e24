// Each `mlaserve` subcommand lives in its own cmd_*.cc and registers itself on the CLI11 app;
// its callback runs the command and sets the process exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace mlaserve::cli {

// Every command writes its exit code here (0 on success).
int& exit_code();

void register_info(CLI::App& app);
void register_inspect(CLI::App& app);
void register_generate(CLI::App& app);
void register_tokenize(CLI::App& app);  // tokenize and detokenize
void register_bench(CLI::App& app);     // bench throughput and bench latency
void register_serve(CLI::App& app);     // the OpenAI-compatible HTTP server

}  // namespace mlaserve::cli
