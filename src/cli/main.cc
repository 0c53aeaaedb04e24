// mlaserve: the command-line entry point. Parses the subcommand, runs it, and turns an
// escaped mlaserve::Error into a message and exit code 1 (never an abort).
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/logging.h"

namespace mlaserve::cli {
int& exit_code() {
  static int code = 0;
  return code;
}
}  // namespace mlaserve::cli

int main(int argc, char** argv) {
  using namespace mlaserve;
  CLI::App app{"mlaserve: DeepSeek MLA inference server"};
  app.require_subcommand(1);
  std::string level = "info";
  app.add_option("--log-level", level, "debug, info, warn, error or off");
  app.parse_complete_callback([&] { set_log_level(parse_log_level(level)); });

  cli::register_info(app);
  cli::register_inspect(app);
  cli::register_generate(app);
  cli::register_tokenize(app);
  cli::register_bench(app);
  cli::register_serve(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const Error& e) {
    std::fprintf(stderr, "mlaserve: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mlaserve: unexpected error: %s\n", e.what());
    return 1;
  }
  return cli::exit_code();
}
